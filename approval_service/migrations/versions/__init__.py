"""The approval queue's schema revisions, oldest first."""
