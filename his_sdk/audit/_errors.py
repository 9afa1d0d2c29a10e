"""Errors of the audit trail, in the ``his_sdk.errors`` tree.

::

    HisError
    ├── AuditUnavailableError   (UNAVAILABLE, "transient")  the call was not served or committed
    └── AuditPublishError       (UNAVAILABLE, "transient")  Kafka did not acknowledge; rows kept
"""

from __future__ import annotations

import grpc

import his_sdk.errors

__all__ = ["AuditPublishError", "AuditUnavailableError"]


class AuditUnavailableError(his_sdk.errors.HisError):
    """An audit record could not be made durable, so the audited action must not proceed.

    Raised when the outbox insert of a write fails (the write's transaction rolls back with
    it), when the queue of read events is full, or when a read waited for its event to commit
    and the commit failed.
    """

    grpc_status_code = grpc.StatusCode.UNAVAILABLE
    issue_code = "transient"


class AuditPublishError(his_sdk.errors.HisError):
    """Kafka did not acknowledge audit events; they stay in the outbox and are retried."""

    grpc_status_code = grpc.StatusCode.UNAVAILABLE
    issue_code = "transient"
