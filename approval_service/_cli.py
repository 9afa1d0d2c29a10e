"""``his approvals list|show|decide|extend|escalate``: the reviewer's command line over gRPC."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import his_sdk.client
import his_sdk.errors

from ._client import ApprovalClient
from ._model import ApprovalRequest, DecisionAction, RequestQuery, RequestStatus
from ._policy import RiskTier

__all__ = ["approvals"]

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: str | None) -> datetime.timedelta | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 2h or 7d")
    return datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@contextmanager
def _client(ctx: click.Context) -> Iterator[ApprovalClient]:
    options: dict[str, Any] = ctx.obj
    tls = None
    if options["ca"] is not None:
        tls = his_sdk.client.TlsConfig.from_files(ca=options["ca"])
    client = ApprovalClient.connect(options["target"], token=options["token"], tls=tls)
    try:
        yield client
    except his_sdk.errors.HisError as exc:
        detail = f" ({exc.diagnostics})" if exc.diagnostics else ""
        raise click.ClickException(f"{type(exc).__name__}: {exc.message}{detail}") from exc
    finally:
        client.close()


def _age(request: ApprovalRequest) -> str:
    seconds = int((datetime.datetime.now(datetime.UTC) - request.created_at).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _summary(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "status": request.status.value,
        "risk": request.risk.value,
        "write": f"{request.interaction.value} {request.resource_type}"
        + (f"/{request.resource_id}" if request.resource_id else ""),
        "patient": request.patient_id,
        "requester": request.requester.client_id,
        "on_behalf_of": request.requester.user,
        "approvals": f"{request.approvals_given}/{request.approvals_required}",
        "version": request.current_version,
        "created": request.created_at.isoformat(timespec="seconds"),
        "expires": request.expires_at.isoformat(timespec="seconds"),
        "justification": request.justification,
    }


def _detail(request: ApprovalRequest) -> dict[str, Any]:
    data = _summary(request)
    data["risk_reason"] = request.risk_reason
    data["reviewer_roles"] = list(request.reviewer_roles)
    data["status_reason"] = request.status_reason
    data["proposed"] = request.proposed
    data["current_resource"] = request.current_resource
    data["versions"] = [
        {
            "number": v.number,
            "author": v.author.person,
            "reason": v.reason,
            "diff": v.diff,
        }
        for v in request.versions
    ]
    data["decisions"] = [
        {
            "action": d.action.value,
            "reviewer": d.reviewer.person,
            "version": d.version,
            "reason": d.reason,
            "at": d.decided_at.isoformat(timespec="seconds"),
        }
        for d in request.decisions
    ]
    if request.outcome is not None:
        data["outcome"] = {
            "written": f"{request.outcome.resource_type}/{request.outcome.resource_id}"
            if request.outcome.resource_id
            else None,
            "version": request.outcome.version_id,
            "error": request.outcome.error,
        }
    data["history"] = [
        {
            "at": e.at.isoformat(timespec="seconds"),
            "kind": e.kind,
            "actor": e.actor.person,
            "detail": e.detail,
        }
        for e in request.history
    ]
    return data


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group()
@click.option(
    "--target",
    envvar="HIS_TARGET",
    default="127.0.0.1:50051",
    show_default=True,
    help="The gateway (host:port); env HIS_TARGET.",
)
@click.option(
    "--token",
    envvar="HIS_TOKEN",
    required=True,
    help="The reviewer's bearer token; env HIS_TOKEN.",
)
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM roots for TLS (TLS is off without it).",
)
@click.pass_context
def approvals(ctx: click.Context, target: str, token: str, ca: Path | None) -> None:
    """Review the approval queue of agent-proposed writes."""
    ctx.obj = {"target": target, "token": token, "ca": ca}


@approvals.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RequestStatus]),
    help="Only these statuses (repeatable); default: pending.",
)
@click.option("--all", "all_statuses", is_flag=True, help="Every status.")
@click.option("--risk", "risks", multiple=True, type=click.Choice([t.value for t in RiskTier]))
@click.option("--patient", default=None, help="Only this patient's requests.")
@click.option("--requester", default=None, help="Requesting agent client id or its user.")
@click.option("--older-than", default=None, help="Only requests at least this old (30m, 2h).")
@click.option("--newer-than", default=None, help="Only requests at most this old (1d).")
@click.option("--limit", default=50, show_default=True, help="Requests per page.")
@click.option("--page-token", default=None, help="Continue after a previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_requests(
    ctx: click.Context,
    statuses: tuple[str, ...],
    all_statuses: bool,
    risks: tuple[str, ...],
    patient: str | None,
    requester: str | None,
    older_than: str | None,
    newer_than: str | None,
    limit: int,
    page_token: str | None,
    as_json: bool,
) -> None:
    """List requests, newest first."""
    chosen = () if all_statuses else tuple(RequestStatus(s) for s in statuses or ("pending",))
    query = RequestQuery(
        statuses=chosen,
        risks=tuple(RiskTier(r) for r in risks),
        patient_id=patient,
        requester=requester,
        min_age=_duration(older_than),
        max_age=_duration(newer_than),
        page_size=limit,
        page_token=page_token,
    )
    with _client(ctx) as client:
        page = client.list(query)
    if as_json:
        _print(
            {
                "requests": [_summary(r) for r in page.requests],
                "next_page_token": page.next_page_token,
            }
        )
        return
    click.echo(f"{'ID':36}  {'STATUS':9} {'RISK':6} {'AGE':>5}  {'APPR':4}  WRITE")
    for request in page.requests:
        summary = _summary(request)
        click.echo(
            f"{request.id:36}  {request.status.value:9} {request.risk.value:6} "
            f"{_age(request):>5}  {summary['approvals']:4}  {summary['write']}"
            + (f" (Patient/{request.patient_id})" if request.patient_id else "")
        )
    if page.next_page_token:
        click.echo(f"more: --page-token {page.next_page_token}")


@approvals.command("show")
@click.argument("request_id")
@click.pass_context
def show(ctx: click.Context, request_id: str) -> None:
    """Show one request: proposal, versions with diffs, decisions, outcome and history."""
    with _client(ctx) as client:
        request = client.get(request_id)
    _print(_detail(request))


@approvals.command("decide")
@click.argument("request_id")
@click.argument("decision", type=click.Choice(["approve", "edit", "reject"]))
@click.option("--reason", default=None, help="Required for reject and edit.")
@click.option(
    "--edited",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="For edit: a JSON file with the whole corrected resource.",
)
@click.option("--version", type=int, default=None, help="The version you reviewed.")
@click.pass_context
def decide(
    ctx: click.Context,
    request_id: str,
    decision: str,
    reason: str | None,
    edited: Path | None,
    version: int | None,
) -> None:
    """Approve, edit (approve with edits) or reject a pending request."""
    action = {
        "approve": DecisionAction.APPROVE,
        "edit": DecisionAction.APPROVE_WITH_EDITS,
        "reject": DecisionAction.REJECT,
    }[decision]
    if action is DecisionAction.APPROVE_WITH_EDITS and edited is None:
        raise click.UsageError("edit needs --edited FILE with the corrected resource")
    resource = json.loads(edited.read_text(encoding="utf-8")) if edited is not None else None
    with _client(ctx) as client:
        request = client.decide(
            request_id, action, reason=reason, edited_resource=resource, version=version
        )
    click.echo(
        f"{request.id}: {request.status.value} "
        f"({request.approvals_given}/{request.approvals_required} approvals, "
        f"version {request.current_version})"
    )


@approvals.command("extend")
@click.argument("request_id")
@click.argument("by")
@click.option("--reason", default=None)
@click.pass_context
def extend(ctx: click.Context, request_id: str, by: str, reason: str | None) -> None:
    """Give a pending request more time (BY like 2h or 1d)."""
    delta = _duration(by)
    assert delta is not None
    with _client(ctx) as client:
        request = client.extend(request_id, delta, reason=reason)
    click.echo(f"{request.id}: expires {request.expires_at.isoformat(timespec='seconds')}")


@approvals.command("escalate")
@click.argument("request_id")
@click.option("--reason", required=True)
@click.option("--to", "to_risk", type=click.Choice([t.value for t in RiskTier]), default=None)
@click.pass_context
def escalate(ctx: click.Context, request_id: str, reason: str, to_risk: str | None) -> None:
    """Raise a pending request's risk tier."""
    with _client(ctx) as client:
        request = client.escalate(request_id, reason=reason, to_risk=to_risk)
    click.echo(
        f"{request.id}: {request.risk.value} risk, "
        f"{request.approvals_given}/{request.approvals_required} approvals"
    )
