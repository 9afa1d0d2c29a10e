"""Alembic migrations of the approval queue (run by ``approval_service.migrate``)."""
