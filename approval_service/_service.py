"""The approval service: the one object every transport calls (gRPC, CLI, web console).

It implements :class:`his_sdk.server.WriteQueue` for the gateway's write path (propose, get
and watch Tasks) and the reviewer operations (list, get, decide, extend, escalate). Every
status change commits together with its AuditEvent (``AuditTrail.append`` in the same
transaction; if the audit record cannot be written, the change rolls back).

Exactly-once execution: an approved request is executed by whoever claims it. A claim is a
lease written in a transaction that locks the row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent executors, replicas, replayed decisions and the
recovery sweep never run it side by side. The adapter receives the request id as the write's
idempotency key: if a process dies after the EHR wrote but before the outcome was recorded, the
sweep re-claims the request once the lease ran out and the adapter returns the first result
instead of writing again. Only the holder of the current claim may record the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import sqlalchemy as sa
import sqlalchemy.exc
from fhir.resources.R4B.task import Task
from sqlmodel import Session, col, select

import his_sdk.errors
from his_sdk._fhir import model_class
from his_sdk.adapter import ApprovedWrite, Interaction, WriteOutcome
from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditOutcome,
    AuditPrincipal,
    AuditSettings,
    AuditTrail,
    AuditUser,
    outcome_for_error,
)
from his_sdk.config import ApprovalSettings
from his_sdk.server import CallContext, ProposalResult, ProposedWrite, WriteExecutor

from ._db import Database
from ._diff import json_patch
from ._migrate import migrate
from ._model import (
    SYSTEM_PARTY,
    TRANSITIONS,
    ApprovalRequest,
    DecisionAction,
    DecisionRecord,
    HistoryEvent,
    Outcome,
    Party,
    RequestPage,
    RequestQuery,
    RequestStatus,
    RequestVersion,
)
from ._policy import ApprovalPolicy, RiskAssessment, RiskTier
from ._tables import DecisionRow, EventRow, RequestRow, VersionRow
from ._task import TaskFacts, task_data

__all__ = ["ApprovalService"]

_log = logging.getLogger(__name__)

_TRANSIENT = (
    his_sdk.errors.UpstreamUnavailableError,
    his_sdk.errors.DeadlineExceededError,
    his_sdk.errors.ResourceExhaustedError,
)
_MAX_REASON = 4000
_MAX_PAGE = 500


_T = TypeVar("_T")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


@dataclass(frozen=True)
class _Claim:
    request_id: str
    owner: str
    attempts: int
    write: ApprovedWrite


class ApprovalService:
    """The approval queue for writes (a :class:`his_sdk.server.WriteQueue`).

    Build it with :meth:`from_settings` (the gateway does, from ``approvals``) or directly;
    ``await start()`` before use and ``await close()`` at the end. A web console or REST facade
    calls the same methods the gRPC servicer calls, with a :class:`his_sdk.server.CallContext`
    holding the verified reviewer.

    Args:
        database: The queue's database.
        settings: The ``approvals`` settings.
        executor: Runs an approved write on the adapter serving its type.
        audit: The audit trail; its outbox must live in ``database`` (same transactions).
        policy: Risk tiers and reviewer permissions; the configured or shipped policy when None.
        instance_id: Names this replica in execution claims.
        clock: The time source (UTC-aware).
        max_concurrent_executions: Approved writes executing at once.
        database_threads: Worker threads running the transactions of calls; executions have
            as many again of their own, so a busy queue never starves them.
    """

    def __init__(
        self,
        database: Database,
        *,
        settings: ApprovalSettings,
        executor: WriteExecutor,
        audit: AuditTrail,
        policy: ApprovalPolicy | None = None,
        instance_id: str | None = None,
        clock: Callable[[], datetime.datetime] = _now,
        max_concurrent_executions: int = 16,
        database_threads: int = 8,
    ) -> None:
        self.database = database
        self.settings = settings
        self.audit = audit
        self.policy = policy or ApprovalPolicy(settings.policy_files)
        self._executor = executor
        self._instance = instance_id or uuid.uuid4().hex[:12]
        self._clock = clock
        self._executions = asyncio.Semaphore(max_concurrent_executions)
        # Its own threads: transactions mostly wait on the database, and the loop's default
        # executor (a handful of threads on a small machine) is shared with the adapters.
        self._pool = ThreadPoolExecutor(database_threads, thread_name_prefix="his-approvals")
        self._execution_pool = ThreadPoolExecutor(
            database_threads, thread_name_prefix="his-approval-executions"
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tick = asyncio.Event()
        self._started = False

    @classmethod
    def from_settings(
        cls,
        settings: ApprovalSettings,
        *,
        executor: WriteExecutor,
        default_url: str,
        audit: AuditSettings,
    ) -> ApprovalService:
        """Build the queue for the gateway.

        The audit trail writes to an outbox in the queue's database. When that is not the
        audit settings' own outbox database, the queue's events form their own hash chain
        (``<chain>/approvals``), so two outboxes never claim one chain, and the queue publishes
        them (``publish_audit``); in the same database the gateway's trail publishes them.
        """
        url = settings.url or default_url
        database = Database(url)
        shared = sa.make_url(url) == sa.make_url(audit.outbox_url)
        if not shared:
            audit = audit.model_copy(update={"chain_id": f"{audit.effective_chain_id}/approvals"})
        # In the audit outbox's own database the gateway's trail already publishes every row.
        publish = settings.publish_audit and not shared
        trail = AuditTrail(audit, engine=database.engine, publish=publish)
        return cls(database, settings=settings, executor=executor, audit=trail)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate (when configured), start the audit trail, then expiry and recovery."""
        if self._started:
            raise RuntimeError("the approval service is already started")
        if self.settings.migrate:
            await self._run(migrate, self.database.engine)
        await self._run(self.audit.start)
        self._started = True
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="his-approval-sweeper")

    async def close(self) -> None:
        """Stop the sweeper and running executions (their claims lapse and are recovered)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        running = list(self._tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._started:
            await self._run(self.audit.close)
            self._started = False
        await self._run(self.database.dispose)
        self._pool.shutdown(wait=False)
        self._execution_pool.shutdown(wait=False)

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        """Register the ApprovalService gRPC servicer."""
        from ._servicer import SERVICE_NAME, ApprovalServicer, add_to_server

        add_to_server(ApprovalServicer(self), server)
        return [SERVICE_NAME]

    # -- agent side ----------------------------------------------------------------------------

    async def propose(self, write: ProposedWrite) -> ProposalResult:
        """Queue a write, or return the request with the same idempotency key.

        Raises:
            his_sdk.errors.AuthenticationError: The call has no principal.
            his_sdk.errors.ConflictError: The idempotency key was used for a different write.
        """
        if write.call.principal is None:
            raise his_sdk.errors.AuthenticationError("a bearer token is required")
        request, replayed = await self._run(self._propose, write)
        if not replayed:
            self._notify()
        return ProposalResult(task=request.task, replayed=replayed)

    async def get_task(self, call: CallContext, task_id: str) -> Task:
        """The Task of a request the caller proposed or may review.

        Raises:
            his_sdk.errors.NotFoundError: No such request visible to the caller.
        """
        return (await self._visible(call, task_id)).task

    async def watch_task(self, call: CallContext, task_id: str) -> AsyncIterator[Task]:
        """The Task now, then after each change of its status, until a terminal one.

        Changes made by this process arrive at once; those of other replicas within
        ``watch_poll_seconds``.

        Raises:
            his_sdk.errors.NotFoundError: No such request visible to the caller.
        """
        request = await self._visible(call, task_id)
        last: tuple[str, str] | None = None
        while True:
            task = request.task
            business = task.businessStatus.text if task.businessStatus else ""
            seen = (str(task.status), business or "")
            if seen != last:
                last = seen
                yield task
            if request.status.terminal:
                return
            tick = self._tick
            current = await self._run(self._revision, task_id)
            if current == request.revision:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tick.wait(), self.settings.watch_poll_seconds)
            request = await self._visible(call, task_id)

    # -- reviewer side -------------------------------------------------------------------------

    async def list_requests(self, call: CallContext, query: RequestQuery) -> RequestPage:
        """Requests matching ``query``, newest first (summaries without versions and history).

        Raises:
            his_sdk.errors.PermissionDeniedError: The caller holds no reviewer role.
            his_sdk.errors.InvalidRequestError: A malformed page token or page size.
        """
        reviewer = self._reviewer(call)
        if not self.policy.is_reviewer(reviewer.roles):
            raise his_sdk.errors.PermissionDeniedError(
                "listing approval requests needs a reviewer role"
            )
        return await self._run(self._list, reviewer, query)

    async def get_request(self, call: CallContext, request_id: str) -> ApprovalRequest:
        """One request with its versions, decisions and history.

        Raises:
            his_sdk.errors.NotFoundError: No such request.
            his_sdk.errors.PermissionDeniedError: The caller may not view it.
        """
        reviewer = self._reviewer(call)
        request = await self._run(self._get, request_id, True)
        self._require(reviewer, "view", request.risk, request.resource_type)
        return request

    async def decide(
        self,
        call: CallContext,
        request_id: str,
        action: DecisionAction,
        *,
        reason: str | None = None,
        edited_resource: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> ApprovalRequest:
        """Approve, approve with edits, or reject a pending request.

        An approval counts once per person and version; the request is approved when the
        current version has the distinct approvals its tier needs, and then executes. An edit
        becomes a new version (the diff is kept) that the editor approves; approvals of
        earlier versions no longer count. Repeating one's own decision returns the request
        unchanged.

        Args:
            call: The reviewer's call.
            request_id: The request.
            action: What to decide.
            reason: Required for a rejection and for an edit.
            edited_resource: For an edit: the whole corrected resource as FHIR JSON.
            version: The version the reviewer looked at; a newer one refuses the decision.

        Raises:
            his_sdk.errors.NotFoundError: No such request.
            his_sdk.errors.PermissionDeniedError: The reviewer proposed it (or it was proposed
                on their behalf), or no role of theirs may decide it.
            his_sdk.errors.InvalidRequestError: A missing reason or an invalid edit.
            his_sdk.errors.ConflictError: The request has a newer version than ``version``.
            his_sdk.errors.PreconditionFailedError: The request is no longer pending.
        """
        reviewer = self._reviewer(call)
        reason = _clean_reason(reason)
        if action in (DecisionAction.REJECT, DecisionAction.APPROVE_WITH_EDITS) and not reason:
            raise his_sdk.errors.InvalidRequestError(
                f"a reason is required to {action.value.replace('_', ' ')}", expression=["reason"]
            )
        if action is DecisionAction.APPROVE_WITH_EDITS and edited_resource is None:
            raise his_sdk.errors.InvalidRequestError(
                "approve with edits needs the edited resource", expression=["edited_resource"]
            )
        if action is not DecisionAction.APPROVE_WITH_EDITS and edited_resource is not None:
            raise his_sdk.errors.InvalidRequestError(
                "an edited resource comes only with approve with edits",
                expression=["edited_resource"],
            )
        request, approved = await self._run(
            self._decide, call, reviewer, request_id, action, reason, edited_resource, version
        )
        self._notify()
        if approved:
            self._spawn_execution(request_id)
        return request

    async def extend(
        self,
        call: CallContext,
        request_id: str,
        by: datetime.timedelta,
        *,
        reason: str | None = None,
    ) -> ApprovalRequest:
        """Give a pending request more time (up to ``max_lifetime`` after its proposal).

        Raises:
            his_sdk.errors.InvalidRequestError: ``by`` is not positive.
            his_sdk.errors.PreconditionFailedError: Not pending, or at its longest lifetime.
        """
        reviewer = self._reviewer(call)
        if by <= datetime.timedelta(0):
            raise his_sdk.errors.InvalidRequestError(
                "an extension must be positive", expression=["extend_by"]
            )
        request = await self._run(
            self._extend, call, reviewer, request_id, by, _clean_reason(reason)
        )
        self._notify()
        return request

    async def escalate(
        self,
        call: CallContext,
        request_id: str,
        *,
        reason: str,
        to_risk: RiskTier | None = None,
    ) -> ApprovalRequest:
        """Raise a pending request's risk tier (by one, or to ``to_risk``).

        The request then needs the approvers and roles of the higher tier.

        Raises:
            his_sdk.errors.InvalidRequestError: No reason.
            his_sdk.errors.PreconditionFailedError: Not pending, or not a higher tier.
        """
        reviewer = self._reviewer(call)
        cleaned = _clean_reason(reason)
        if not cleaned:
            raise his_sdk.errors.InvalidRequestError(
                "a reason is required to escalate", expression=["reason"]
            )
        request = await self._run(self._escalate, call, reviewer, request_id, cleaned, to_risk)
        self._notify()
        return request

    # -- maintenance ---------------------------------------------------------------------------

    async def sweep(self) -> tuple[int, int]:
        """Expire overdue requests, then execute approved ones nobody holds a claim on.

        Returns:
            How many requests expired and how many executions finished.
        """
        expired = await self.expire_due()
        executed = await self.recover()
        return expired, executed

    async def expire_due(self, limit: int = 500) -> int:
        """Expire pending requests past their deadline; returns how many."""
        count = await self._run(self._expire_due, limit)
        if count:
            self._notify()
        return count

    async def recover(self, limit: int = 200) -> int:
        """Execute approved requests that are not executed and not claimed (after a crash).

        Returns:
            How many executions recorded an outcome.
        """
        ids = await self._run(self._executable_ids, limit)
        results = await asyncio.gather(*(self.execute(request_id) for request_id in ids))
        return sum(1 for done in results if done)

    async def execute(self, request_id: str) -> bool:
        """Claim an approved request and execute it once.

        Returns:
            True when this call recorded the outcome (executed or failed); False when the
            request was not executable, another executor held it, or a transient EHR failure
            left it for a retry.
        """
        async with self._executions:
            claim = await self._run_execution(self._claim, request_id)
            if claim is None:
                return False
            try:
                outcome = await self._executor(claim.write)
            except his_sdk.errors.HisError as exc:
                return await self._after_failure(claim, exc)
            except Exception as exc:
                _log.exception("executing approved request %s failed unexpectedly", request_id)
                return await self._after_failure(claim, exc)
            recorded = await self._run_execution(self._finish, claim, outcome, None)
        self._notify()
        return recorded

    # -- internals: async glue -----------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args))

    async def _run_execution(self, function: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        pool = self._execution_pool
        return await loop.run_in_executor(pool, functools.partial(function, *args))

    def _notify(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def _spawn_execution(self, request_id: str) -> None:
        task = asyncio.create_task(self.execute(request_id), name=f"his-approval-{request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._execution_done)

    def _execution_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # The claim lapses and the sweep retries; the request is never lost.
            _log.error("execution task %s failed: %s", task.get_name(), error, exc_info=error)

    async def _after_failure(self, claim: _Claim, exc: Exception) -> bool:
        transient = not isinstance(exc, his_sdk.errors.HisError) or isinstance(exc, _TRANSIENT)
        if transient and claim.attempts < self.settings.max_attempts:
            _log.warning(
                "approved request %s: attempt %d failed (%s); retrying in %.0f s",
                claim.request_id,
                claim.attempts,
                type(exc).__name__,
                self.settings.retry_seconds,
            )
            await self._run_execution(self._release, claim, exc)
            return False
        recorded = await self._run_execution(self._finish, claim, None, exc)
        self._notify()
        return recorded

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The next round retries; a failed round must not stop expiry and recovery.
                _log.exception("approval sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)

    async def _visible(self, call: CallContext, request_id: str) -> ApprovalRequest:
        if call.principal is None:
            raise his_sdk.errors.AuthenticationError("a bearer token is required")
        request = await self._run(self._get, request_id, False)
        caller = Party.of(call.principal)
        mine = caller.client_id == request.requester.client_id
        reviewer = call.principal.on_behalf_of is None and caller.user is not None
        if not mine and not (
            reviewer
            and self.policy.permits(caller.roles, "view", request.risk, request.resource_type)
        ):
            raise his_sdk.errors.NotFoundError(f"Task/{request_id} not found")
        return request

    def _reviewer(self, call: CallContext) -> Party:
        # Decisions are human: a person's own token, never an agent acting on someone's behalf.
        if call.principal is None:
            raise his_sdk.errors.AuthenticationError("a bearer token is required")
        party = Party.of(call.principal)
        if call.principal.on_behalf_of is not None or party.user is None:
            raise his_sdk.errors.PermissionDeniedError(
                "reviewing needs a person's own token; agents and tokens issued on someone's "
                "behalf cannot review"
            )
        return party

    def _require(self, reviewer: Party, action: str, tier: RiskTier, resource_type: str) -> None:
        if not self.policy.permits(reviewer.roles, action, tier, resource_type):
            roles = ", ".join(reviewer.roles) or "none"
            raise his_sdk.errors.PermissionDeniedError(
                f"no role of this token ({roles}) may {action} a {tier.value}-risk "
                f"{resource_type} request"
            )

    # -- internals: transactions (worker threads) ----------------------------------------------

    def _propose(self, write: ProposedWrite) -> tuple[ApprovalRequest, bool]:
        principal = write.call.principal
        assert principal is not None
        requester = Party.of(principal)
        now = self._clock()
        body = _resource_json(write.resource)
        current = _resource_json(write.current)
        target = {
            "interaction": write.interaction.value,
            "type": write.resource_type,
            "id": write.resource_id,
            "resource": body,
        }
        payload_hash = _sha256(target)
        key = write.idempotency_key or "derived:" + _sha256(
            {"client": requester.client_id, "user": requester.user, **target}
        )
        existing = self._by_key(requester.client_id, key)
        if existing is not None:
            return self._replay(existing, payload_hash)
        assessment = self.policy.assess(
            write.interaction.value, write.resource_type, body if body is not None else current
        )
        request_id = str(uuid.uuid4())
        row = RequestRow(
            id=request_id,
            status=RequestStatus.PENDING.value,
            risk=assessment.tier.value,
            risk_rank=assessment.tier.rank,
            risk_reason=assessment.reason,
            approvals_required=assessment.approvals_required,
            reviewer_roles=json.dumps(list(assessment.reviewer_roles)),
            interaction=write.interaction.value,
            resource_type=write.resource_type,
            resource_id=write.resource_id,
            patient_id=write.patient_id,
            requester_client_id=requester.client_id,
            requester_subject=requester.subject,
            requester_user=requester.user,
            requester_fhir_user=requester.fhir_user,
            requester_json=requester.to_json(),
            justification=write.justification,
            idempotency_key=key,
            payload_hash=payload_hash,
            request_id=write.call.request_id[:128],
            base_version_id=_version_of(write.current),
            current_json=_canonical(current) if current is not None else None,
            created_at=now,
            updated_at=now,
            expires_at=now + self.settings.expiry,
        )
        try:
            with self.database.write() as session:
                session.add(row)
                session.flush()
                session.add(
                    VersionRow(
                        request_id=request_id,
                        number=1,
                        resource_json=_canonical(body) if body is not None else None,
                        author_json=row.requester_json,
                        created_at=now,
                    )
                )
                self._event(
                    session,
                    row,
                    "proposed",
                    requester,
                    None,
                    RequestStatus.PENDING,
                    f"risk {assessment.tier.value}: {assessment.reason}",
                    now,
                )
                snapshot = self._snapshot(session, row, full=False)
                self._audit_operation(session, row, requester, "approval-propose", write.call)
                return snapshot, False
        except sqlalchemy.exc.IntegrityError:
            # A concurrent proposal with the same key won the insert.
            existing = self._by_key(requester.client_id, key)
            if existing is None:
                raise
            return self._replay(existing, payload_hash)

    def _by_key(self, client_id: str, key: str) -> RequestRow | None:
        with self.database.read() as session:
            return session.exec(
                select(RequestRow).where(
                    RequestRow.requester_client_id == client_id,
                    RequestRow.idempotency_key == key,
                )
            ).first()

    def _replay(self, row: RequestRow, payload_hash: str) -> tuple[ApprovalRequest, bool]:
        if row.payload_hash != payload_hash:
            raise his_sdk.errors.ConflictError(
                "this idempotency key was already used for a different write",
                diagnostics=f"Task/{row.id}",
            )
        with self.database.read() as session:
            return self._snapshot(session, row, full=False), True

    def _get(self, request_id: str, full: bool) -> ApprovalRequest:
        with self.database.read() as session:
            row = session.get(RequestRow, request_id)
            if row is None:
                raise his_sdk.errors.NotFoundError(f"approval request {request_id} not found")
            return self._snapshot(session, row, full=full)

    def _revision(self, request_id: str) -> int:
        with self.database.read() as session:
            value = session.exec(
                select(RequestRow.revision).where(RequestRow.id == request_id)
            ).first()
            return int(value) if value is not None else -1

    def _locked(self, session: Session, request_id: str) -> RequestRow:
        statement = self.database.for_update(select(RequestRow).where(RequestRow.id == request_id))
        row: RequestRow | None = session.exec(statement).first()
        if row is None:
            raise his_sdk.errors.NotFoundError(f"approval request {request_id} not found")
        return row

    def _decide(
        self,
        call: CallContext,
        reviewer: Party,
        request_id: str,
        action: DecisionAction,
        reason: str | None,
        edited: dict[str, Any] | None,
        version: int | None,
    ) -> tuple[ApprovalRequest, bool]:
        now = self._clock()
        with self.database.write() as session:
            row = self._locked(session, request_id)
            requester = Party.from_json(row.requester_json)
            if reviewer.identities() & requester.identities():
                raise his_sdk.errors.PermissionDeniedError(
                    "nobody may decide a request they proposed or that was proposed on their "
                    "behalf; another reviewer must decide it"
                )
            tier = RiskTier(row.risk)
            permission = "reject" if action is DecisionAction.REJECT else "approve"
            self._require(reviewer, permission, tier, row.resource_type)
            status = RequestStatus(row.status)
            earlier = self._decision_of(session, row, reviewer.person)
            if earlier is not None and _same_decision(earlier, action, edited, session, row):
                # A replayed decision: answer as the first time, change nothing.
                return self._snapshot(session, row, full=True), False
            if status is not RequestStatus.PENDING:
                raise his_sdk.errors.PreconditionFailedError(
                    f"the request is {status.value}; only pending requests can be decided"
                )
            if row.expires_at <= now:
                raise his_sdk.errors.PreconditionFailedError(
                    "the request expired before this decision"
                )
            if version is not None and version != row.current_version:
                raise his_sdk.errors.ConflictError(
                    f"the request changed (now version {row.current_version}); review it again"
                )
            if earlier is not None and earlier.version == row.current_version:
                raise his_sdk.errors.PreconditionFailedError(
                    "you already decided this version of the request"
                )
            if action is DecisionAction.APPROVE_WITH_EDITS:
                assert edited is not None and reason is not None
                self._edit(session, row, reviewer, edited, reason, now)
                tier = RiskTier(row.risk)
                self._require(reviewer, "approve", tier, row.resource_type)
            session.add(
                DecisionRow(
                    request_id=row.id,
                    version=row.current_version,
                    action=action.value,
                    reviewer=reviewer.person,
                    reviewer_json=reviewer.to_json(),
                    reason=reason,
                    decided_at=now,
                )
            )
            session.flush()
            approved = False
            if action is DecisionAction.REJECT:
                self._transition(session, row, RequestStatus.REJECTED, now, reason)
                self._event(
                    session, row, "rejected", reviewer, status, RequestStatus.REJECTED, reason, now
                )
                operation = "approval-reject"
            else:
                given = self._approvals(session, row)
                detail = f"{len(given)} of {row.approvals_required} approvals"
                if len(given) >= row.approvals_required:
                    self._transition(session, row, RequestStatus.APPROVED, now, None)
                    self._event(
                        session,
                        row,
                        "approved",
                        reviewer,
                        status,
                        RequestStatus.APPROVED,
                        detail,
                        now,
                    )
                    approved = True
                else:
                    self._touch(row, now)
                    self._event(session, row, "approval", reviewer, None, None, detail, now)
                operation = (
                    "approval-approve-with-edits"
                    if action is DecisionAction.APPROVE_WITH_EDITS
                    else "approval-approve"
                )
            snapshot = self._snapshot(session, row, full=True)
            self._audit_operation(session, row, reviewer, operation, call)
            return snapshot, approved

    def _edit(
        self,
        session: Session,
        row: RequestRow,
        reviewer: Party,
        edited: dict[str, Any],
        reason: str,
        now: datetime.datetime,
    ) -> None:
        if row.interaction == Interaction.DELETE.value:
            raise his_sdk.errors.InvalidRequestError("a delete has no resource to edit")
        resource = _validated_edit(row, edited)
        previous = session.get(VersionRow, (row.id, row.current_version))
        before = json.loads(previous.resource_json) if previous and previous.resource_json else {}
        if _patient_of_json(resource) != row.patient_id:
            raise his_sdk.errors.InvalidRequestError(
                "an edit must keep the resource's patient", expression=["subject"]
            )
        diff = json_patch(before, resource)
        if not diff:
            raise his_sdk.errors.InvalidRequestError(
                "the edited resource equals the current version; approve it instead"
            )
        row.current_version += 1
        session.add(
            VersionRow(
                request_id=row.id,
                number=row.current_version,
                resource_json=_canonical(resource),
                diff_json=_canonical(diff),
                author_json=reviewer.to_json(),
                reason=reason,
                created_at=now,
            )
        )
        assessment = self.policy.assess(row.interaction, row.resource_type, resource)
        if assessment.tier.rank > row.risk_rank:
            self._set_tier(row, assessment)
        self._event(
            session,
            row,
            "edited",
            reviewer,
            None,
            None,
            f"version {row.current_version}: {len(diff)} change(s); {reason}",
            now,
        )

    def _set_tier(self, row: RequestRow, assessment: RiskAssessment) -> None:
        row.risk = assessment.tier.value
        row.risk_rank = assessment.tier.rank
        row.risk_reason = assessment.reason
        row.approvals_required = assessment.approvals_required
        row.reviewer_roles = json.dumps(list(assessment.reviewer_roles))

    def _extend(
        self,
        call: CallContext,
        reviewer: Party,
        request_id: str,
        by: datetime.timedelta,
        reason: str | None,
    ) -> ApprovalRequest:
        now = self._clock()
        with self.database.write() as session:
            row = self._locked(session, request_id)
            self._require(reviewer, "extend", RiskTier(row.risk), row.resource_type)
            self._require_pending(row, now)
            limit = row.created_at + self.settings.max_lifetime
            new = min(max(row.expires_at, now) + by, limit)
            if new <= row.expires_at:
                raise his_sdk.errors.PreconditionFailedError(
                    "the request already lives as long as approvals.max_lifetime allows"
                )
            row.expires_at = new
            self._touch(row, now)
            detail = f"expires {new.isoformat(timespec='seconds')}" + (
                f"; {reason}" if reason else ""
            )
            self._event(session, row, "extended", reviewer, None, None, detail, now)
            snapshot = self._snapshot(session, row, full=True)
            self._audit_operation(session, row, reviewer, "approval-extend", call)
            return snapshot

    def _escalate(
        self,
        call: CallContext,
        reviewer: Party,
        request_id: str,
        reason: str,
        to_risk: RiskTier | None,
    ) -> ApprovalRequest:
        now = self._clock()
        with self.database.write() as session:
            row = self._locked(session, request_id)
            tier = RiskTier(row.risk)
            self._require(reviewer, "escalate", tier, row.resource_type)
            self._require_pending(row, now)
            target = to_risk or tier.next()
            if target is None or target.rank <= tier.rank:
                raise his_sdk.errors.PreconditionFailedError(
                    f"the request is already {tier.value} risk; escalate only to a higher tier"
                )
            self._set_tier(
                row, self.policy.for_tier(target, row.resource_type, f"escalated: {reason}")
            )
            row.escalated = True
            self._touch(row, now)
            self._event(
                session,
                row,
                "escalated",
                reviewer,
                None,
                None,
                f"{tier.value} -> {target.value}: {reason}",
                now,
            )
            snapshot = self._snapshot(session, row, full=True)
            self._audit_operation(session, row, reviewer, "approval-escalate", call)
            return snapshot

    def _require_pending(self, row: RequestRow, now: datetime.datetime) -> None:
        if row.status != RequestStatus.PENDING.value:
            raise his_sdk.errors.PreconditionFailedError(
                f"the request is {row.status}; only pending requests can change"
            )
        if row.expires_at <= now:
            raise his_sdk.errors.PreconditionFailedError("the request expired")

    def _expire_due(self, limit: int) -> int:
        now = self._clock()
        with self.database.read() as session:
            ids = list(
                session.exec(
                    select(RequestRow.id)
                    .where(
                        RequestRow.status == RequestStatus.PENDING.value,
                        col(RequestRow.expires_at) <= now,
                    )
                    .limit(limit)
                )
            )
        expired = 0
        for request_id in ids:
            with self.database.write() as session:
                statement = self.database.for_update(
                    select(RequestRow).where(RequestRow.id == request_id), skip_locked=True
                )
                row = session.exec(statement).first()
                if row is None or row.status != RequestStatus.PENDING.value:
                    continue
                if row.expires_at > now:
                    continue
                reason = "no decision before the deadline; expiry is a rejection"
                self._transition(session, row, RequestStatus.EXPIRED, now, reason)
                self._event(
                    session,
                    row,
                    "expired",
                    SYSTEM_PARTY,
                    RequestStatus.PENDING,
                    RequestStatus.EXPIRED,
                    reason,
                    now,
                )
                self._audit_operation(session, row, SYSTEM_PARTY, "approval-expire", None)
                expired += 1
        return expired

    def _executable_ids(self, limit: int) -> list[str]:
        now = self._clock()
        with self.database.write() as session:
            statement = self.database.for_update(
                select(RequestRow.id)
                .where(
                    RequestRow.status == RequestStatus.APPROVED.value,
                    sa.or_(
                        col(RequestRow.claim_expires_at).is_(None),
                        col(RequestRow.claim_expires_at) <= now,
                    ),
                )
                .order_by(col(RequestRow.decided_at))
                .limit(limit),
                skip_locked=True,
            )
            return list(session.exec(statement))

    def _claim(self, request_id: str) -> _Claim | None:
        now = self._clock()
        with self.database.write() as session:
            statement = self.database.for_update(
                select(RequestRow).where(RequestRow.id == request_id), skip_locked=True
            )
            row = session.exec(statement).first()
            if row is None or row.status != RequestStatus.APPROVED.value:
                return None
            if row.claim_expires_at is not None and row.claim_expires_at > now:
                return None
            owner = f"{self._instance}:{uuid.uuid4().hex[:12]}"
            row.claim_owner = owner
            row.claim_expires_at = now + datetime.timedelta(
                seconds=self.settings.execution_lease_seconds
            )
            row.attempts += 1
            self._event(
                session,
                row,
                "execution-started",
                SYSTEM_PARTY,
                None,
                None,
                f"attempt {row.attempts}",
                now,
            )
            version = session.get(VersionRow, (row.id, row.current_version))
            resource = None
            if version is not None and version.resource_json is not None:
                resource = model_class(row.resource_type).model_validate_json(version.resource_json)
            write = ApprovedWrite(
                key=row.id,
                interaction=Interaction(row.interaction),
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                resource=resource,
                expected_version=row.base_version_id,
            )
            return _Claim(row.id, owner, row.attempts, write)

    def _release(self, claim: _Claim, error: BaseException) -> None:
        now = self._clock()
        with self.database.write() as session:
            row = self._locked(session, claim.request_id)
            if row.claim_owner != claim.owner:
                return
            row.claim_expires_at = now + datetime.timedelta(seconds=self.settings.retry_seconds)
            self._event(
                session,
                row,
                "execution-retry",
                SYSTEM_PARTY,
                None,
                None,
                f"attempt {claim.attempts}: {_error_text(error)}",
                now,
            )

    def _finish(
        self, claim: _Claim, outcome: WriteOutcome | None, error: BaseException | None
    ) -> bool:
        now = self._clock()
        with self.database.write() as session:
            row = self._locked(session, claim.request_id)
            if row.status != RequestStatus.APPROVED.value or row.claim_owner != claim.owner:
                # Our lease ran out and another executor took over; its outcome stands (the
                # adapter gave both the same result for the same key).
                _log.warning(
                    "approved request %s: outcome of a lapsed claim discarded", claim.request_id
                )
                return False
            row.claim_owner = None
            row.claim_expires_at = None
            row.executed_at = now
            requester = Party.from_json(row.requester_json)
            approvers = tuple(
                AuditUser(p.person, p.fhir_user, p.display) for p in self._approvals(session, row)
            )
            action = {
                Interaction.CREATE.value: AuditAction.CREATE,
                Interaction.UPDATE.value: AuditAction.UPDATE,
                Interaction.DELETE.value: AuditAction.DELETE,
            }[row.interaction]
            if outcome is not None:
                row.outcome_resource_type = outcome.resource_type
                row.outcome_resource_id = outcome.resource_id
                row.outcome_version_id = outcome.version_id
                row.outcome_message = outcome.message or None
                self._transition(session, row, RequestStatus.EXECUTED, now, None)
                written = f"{outcome.resource_type}/{outcome.resource_id}"
                self._event(
                    session,
                    row,
                    "executed",
                    SYSTEM_PARTY,
                    RequestStatus.APPROVED,
                    RequestStatus.EXECUTED,
                    written,
                    now,
                )
                audit_outcome, audit_text = AuditOutcome.SUCCESS, None
                written_type = outcome.resource_type
                written_id: str | None = outcome.resource_id
                version_id = outcome.version_id
            else:
                assert error is not None
                text = _error_text(error)
                row.error_text = text
                self._transition(session, row, RequestStatus.FAILED, now, text)
                self._event(
                    session,
                    row,
                    "failed",
                    SYSTEM_PARTY,
                    RequestStatus.APPROVED,
                    RequestStatus.FAILED,
                    text,
                    now,
                )
                audit_outcome, audit_text = outcome_for_error(error)
                written_type, written_id, version_id = row.resource_type, row.resource_id, None
            self.audit.append(
                session.connection(),
                AuditContext(
                    action=action,
                    principal=_audit_principal(requester),
                    resource_type=written_type,
                    resource_ids=(written_id,) if written_id else (),
                    patient_ids=(row.patient_id,) if row.patient_id else (),
                    outcome=audit_outcome,
                    outcome_text=audit_text,
                    version_id=version_id,
                    approvers=approvers,
                    request_id=row.request_id,
                ),
            )
            return True

    # -- internals: rows -----------------------------------------------------------------------

    def _transition(
        self,
        session: Session,
        row: RequestRow,
        to: RequestStatus,
        now: datetime.datetime,
        reason: str | None,
    ) -> None:
        current = RequestStatus(row.status)
        if to not in TRANSITIONS[current]:
            raise RuntimeError(f"illegal transition {current.value} -> {to.value}")
        row.status = to.value
        if current is RequestStatus.PENDING:
            row.decided_at = now
        if reason is not None:
            row.status_reason = reason
        self._touch(row, now)

    def _touch(self, row: RequestRow, now: datetime.datetime) -> None:
        row.revision += 1
        row.updated_at = now

    def _event(
        self,
        session: Session,
        row: RequestRow,
        kind: str,
        actor: Party,
        from_status: RequestStatus | None,
        to_status: RequestStatus | None,
        detail: str | None,
        now: datetime.datetime,
    ) -> None:
        session.add(
            EventRow(
                request_id=row.id,
                kind=kind,
                actor_json=actor.to_json(),
                from_status=from_status.value if from_status else None,
                to_status=to_status.value if to_status else None,
                detail=detail,
                at=now,
            )
        )

    # The audit append locks the chain head until commit, serialising every audited
    # transaction of the database: it is always the last statement before the commit.
    def _audit_operation(
        self,
        session: Session,
        row: RequestRow,
        actor: Party,
        operation: str,
        call: CallContext | None,
    ) -> None:
        session.flush()
        self.audit.append(
            session.connection(),
            AuditContext(
                action=AuditAction.OPERATION,
                operation=operation,
                principal=_audit_principal(actor),
                resource_type="Task",
                resource_ids=(row.id,),
                patient_ids=(row.patient_id,) if row.patient_id else (),
                request_id=call.request_id if call else None,
                traceparent=call.trace_parent if call else None,
                client_address=call.peer or None if call else None,
            ),
        )

    def _decision_of(self, session: Session, row: RequestRow, person: str) -> DecisionRow | None:
        return session.exec(
            select(DecisionRow)
            .where(DecisionRow.request_id == row.id, DecisionRow.reviewer == person)
            .order_by(col(DecisionRow.version).desc())
        ).first()

    def _approvals(self, session: Session, row: RequestRow) -> list[Party]:
        decisions = session.exec(
            select(DecisionRow).where(
                DecisionRow.request_id == row.id,
                DecisionRow.version == row.current_version,
                col(DecisionRow.action).in_(
                    [DecisionAction.APPROVE.value, DecisionAction.APPROVE_WITH_EDITS.value]
                ),
            )
        )
        return self._counted(decisions, row)

    def _counted(self, decisions: Iterable[DecisionRow], row: RequestRow) -> list[Party]:
        # Only approvals by people who may approve at the request's current tier count (an
        # escalation can raise the tier after someone approved).
        tier = RiskTier(row.risk)
        counted: dict[str, Party] = {}
        for decision in decisions:
            party = Party.from_json(decision.reviewer_json)
            if self.policy.permits(party.roles, "approve", tier, row.resource_type):
                counted.setdefault(decision.reviewer, party)
        return list(counted.values())

    def _snapshot(self, session: Session, row: RequestRow, *, full: bool) -> ApprovalRequest:
        return self._snapshots(session, [row], full=full)[0]

    def _snapshots(
        self, session: Session, rows: Sequence[RequestRow], *, full: bool
    ) -> list[ApprovalRequest]:
        if not rows:
            return []
        session.flush()
        ids = [r.id for r in rows]
        version_rows = session.exec(
            select(VersionRow)
            .where(col(VersionRow.request_id).in_(ids))
            .order_by(col(VersionRow.request_id), col(VersionRow.number))
        ).all()
        decision_rows = session.exec(
            select(DecisionRow)
            .where(col(DecisionRow.request_id).in_(ids))
            .order_by(col(DecisionRow.decided_at), col(DecisionRow.id))
        ).all()
        event_rows = (
            session.exec(
                select(EventRow)
                .where(col(EventRow.request_id).in_(ids))
                .order_by(col(EventRow.at), col(EventRow.id))
            ).all()
            if full
            else []
        )
        result = []
        for row in rows:
            versions = [v for v in version_rows if v.request_id == row.id]
            decisions = [d for d in decision_rows if d.request_id == row.id]
            latest = next((v for v in versions if v.number == row.current_version), None)
            proposed = json.loads(latest.resource_json) if latest and latest.resource_json else None
            current = json.loads(row.current_json) if row.current_json else None
            approvals = self._counted(
                (
                    d
                    for d in decisions
                    if d.version == row.current_version and d.action != DecisionAction.REJECT
                ),
                row,
            )
            outcome = None
            if row.executed_at is not None:
                outcome = Outcome(
                    resource_type=row.outcome_resource_type,
                    resource_id=row.outcome_resource_id,
                    version_id=row.outcome_version_id,
                    message=row.outcome_message,
                    error=row.error_text,
                    executed_at=row.executed_at,
                )
            status = RequestStatus(row.status)
            requester = Party.from_json(row.requester_json)
            facts = TaskFacts(
                id=row.id,
                status=status,
                revision=row.revision,
                interaction=row.interaction,
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                patient_id=row.patient_id,
                requester=requester,
                justification=row.justification,
                idempotency_key=row.idempotency_key,
                risk=row.risk,
                risk_reason=row.risk_reason,
                current_version=row.current_version,
                approvals_required=row.approvals_required,
                approvals_given=len(approvals),
                proposed=proposed if proposed is not None else current,
                created_at=row.created_at,
                updated_at=row.updated_at,
                expires_at=row.expires_at,
                status_reason=row.status_reason,
                outcome=outcome,
            )
            result.append(
                ApprovalRequest(
                    id=row.id,
                    status=status,
                    risk=RiskTier(row.risk),
                    risk_reason=row.risk_reason,
                    interaction=Interaction(row.interaction),
                    resource_type=row.resource_type,
                    resource_id=row.resource_id,
                    patient_id=row.patient_id,
                    requester=requester,
                    justification=row.justification,
                    idempotency_key=row.idempotency_key,
                    current_version=row.current_version,
                    approvals_required=row.approvals_required,
                    approvals_given=len(approvals),
                    reviewer_roles=tuple(json.loads(row.reviewer_roles)),
                    escalated=row.escalated,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    expires_at=row.expires_at,
                    status_reason=row.status_reason,
                    revision=row.revision,
                    outcome=outcome,
                    proposed=proposed,
                    current_resource=current,
                    task_data=task_data(facts),
                    versions=tuple(_version(v) for v in versions) if full else (),
                    decisions=tuple(_decision(d) for d in decisions) if full else (),
                    history=tuple(_history(e) for e in event_rows),
                )
            )
        return result

    def _list(self, reviewer: Party, query: RequestQuery) -> RequestPage:
        size = query.page_size or self.settings.page_size
        if size < 1 or size > _MAX_PAGE:
            raise his_sdk.errors.InvalidRequestError(
                f"page size must be 1-{_MAX_PAGE}", expression=["page_size"]
            )
        now = self._clock()
        statement = select(RequestRow)
        if query.statuses:
            statement = statement.where(
                col(RequestRow.status).in_([s.value for s in query.statuses])
            )
        if query.risks:
            statement = statement.where(col(RequestRow.risk).in_([r.value for r in query.risks]))
        if query.patient_id:
            statement = statement.where(RequestRow.patient_id == query.patient_id)
        if query.requester:
            statement = statement.where(
                sa.or_(
                    col(RequestRow.requester_client_id) == query.requester,
                    col(RequestRow.requester_user) == query.requester,
                )
            )
        if query.min_age:
            statement = statement.where(col(RequestRow.created_at) <= now - query.min_age)
        if query.max_age:
            statement = statement.where(col(RequestRow.created_at) >= now - query.max_age)
        if query.page_token:
            created, after_id = _decode_token(query.page_token)
            statement = statement.where(
                sa.or_(
                    col(RequestRow.created_at) < created,
                    sa.and_(col(RequestRow.created_at) == created, col(RequestRow.id) < after_id),
                )
            )
        statement = statement.order_by(col(RequestRow.created_at).desc(), col(RequestRow.id).desc())
        with self.database.read() as session:
            rows: list[RequestRow] = []
            # Requests the reviewer may not view are skipped, so a page may need more rows.
            batch_statement = statement
            while len(rows) <= size:
                batch = session.exec(batch_statement.limit(size + 1)).all()
                for row in batch:
                    if self.policy.permits(
                        reviewer.roles, "view", RiskTier(row.risk), row.resource_type
                    ):
                        rows.append(row)
                if len(batch) <= size:
                    break
                last = batch[-1]
                batch_statement = statement.where(
                    sa.or_(
                        col(RequestRow.created_at) < last.created_at,
                        sa.and_(
                            col(RequestRow.created_at) == last.created_at,
                            col(RequestRow.id) < last.id,
                        ),
                    )
                )
            page = rows[:size]
            token = _encode_token(page[-1]) if len(rows) > size and page else None
            return RequestPage(self._snapshots(session, page, full=False), token)


# -- helpers ---------------------------------------------------------------------------------


def _resource_json(resource: Any) -> dict[str, Any] | None:
    if resource is None:
        return None
    data: dict[str, Any] = json.loads(resource.model_dump_json())
    return data


def _version_of(resource: Any) -> str | None:
    meta = getattr(resource, "meta", None) if resource is not None else None
    version = getattr(meta, "versionId", None) if meta is not None else None
    return str(version) if version else None


def _patient_of_json(data: dict[str, Any]) -> str | None:
    if data.get("resourceType") == "Patient":
        value = data.get("id")
        return str(value) if value else None
    for key in ("subject", "patient", "beneficiary"):
        ref = data.get(key)
        if isinstance(ref, dict):
            reference = str(ref.get("reference", ""))
            if reference.startswith("Patient/"):
                return reference.split("/", 1)[1].split("/_history", 1)[0]
    return None


def _validated_edit(row: RequestRow, edited: dict[str, Any]) -> dict[str, Any]:
    if edited.get("resourceType") != row.resource_type:
        raise his_sdk.errors.InvalidRequestError(
            f"the edited resource must be a {row.resource_type}", expression=["resourceType"]
        )
    data = dict(edited)
    if row.interaction == Interaction.CREATE.value:
        data.pop("id", None)
    elif data.get("id") != row.resource_id:
        raise his_sdk.errors.InvalidRequestError(
            "the edited resource must keep the id of the resource it updates", expression=["id"]
        )
    try:
        model = model_class(row.resource_type).model_validate(data)
    except ValueError as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"the edited resource is not a valid FHIR R4 {row.resource_type}"
        ) from exc
    checked = _resource_json(model)
    assert checked is not None
    return checked


def _same_decision(
    earlier: DecisionRow,
    action: DecisionAction,
    edited: dict[str, Any] | None,
    session: Session,
    row: RequestRow,
) -> bool:
    if earlier.action != action.value:
        return False
    if action is not DecisionAction.APPROVE_WITH_EDITS:
        return earlier.version == row.current_version
    # A replayed edit is the same edit of the version it created.
    version = session.get(VersionRow, (row.id, earlier.version))
    if version is None or version.resource_json is None or edited is None:
        return False
    try:
        proposed = _validated_edit(row, edited)
    except his_sdk.errors.InvalidRequestError:
        return False
    same: bool = json.loads(version.resource_json) == proposed
    return same and earlier.version == row.current_version


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    text = reason.strip()
    if len(text) > _MAX_REASON:
        raise his_sdk.errors.InvalidRequestError(
            f"the reason is longer than {_MAX_REASON} characters", expression=["reason"]
        )
    return text or None


def _error_text(error: BaseException) -> str:
    if isinstance(error, his_sdk.errors.HisError):
        text = f"{error.issue_code}: {error.message}"
        return f"{text} ({error.diagnostics})" if error.diagnostics else text
    return f"exception: {type(error).__name__}"


def _audit_principal(party: Party) -> AuditPrincipal:
    user = AuditUser(party.user, party.fhir_user, party.display) if party.user else None
    return AuditPrincipal(
        client_id=party.client_id,
        issuer=party.issuer,
        token_id=party.token_id,
        user=user,
        roles=party.roles,
        purpose_of_use=party.purpose_of_use,
    )


def _version(row: VersionRow) -> RequestVersion:
    return RequestVersion(
        number=row.number,
        resource=json.loads(row.resource_json) if row.resource_json else None,
        diff=json.loads(row.diff_json) if row.diff_json else [],
        author=Party.from_json(row.author_json),
        reason=row.reason,
        created_at=row.created_at,
    )


def _decision(row: DecisionRow) -> DecisionRecord:
    return DecisionRecord(
        action=DecisionAction(row.action),
        reviewer=Party.from_json(row.reviewer_json),
        version=row.version,
        reason=row.reason,
        decided_at=row.decided_at,
    )


def _history(row: EventRow) -> HistoryEvent:
    return HistoryEvent(
        kind=row.kind,
        actor=Party.from_json(row.actor_json),
        from_status=RequestStatus(row.from_status) if row.from_status else None,
        to_status=RequestStatus(row.to_status) if row.to_status else None,
        detail=row.detail,
        at=row.at,
    )


def _encode_token(row: RequestRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[datetime.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, request_id = json.loads(raw)
        when = datetime.datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(request_id, str):
            raise ValueError("bad token")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise his_sdk.errors.InvalidRequestError(
            "malformed page token", expression=["page_token"]
        ) from exc
    return when, request_id
