"""Human approval queue for agent-proposed writes (built with the approval service)."""
