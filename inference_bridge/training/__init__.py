"""Training scripts for the shipped models (run as modules, not imported by the bridge)."""
