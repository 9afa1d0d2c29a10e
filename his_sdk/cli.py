"""The ``his`` command line: serve the gateway, run the dev issuer, seed a legacy database."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["main"]

_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML config file (HIS_* environment variables override it).",
)


def _settings(config_path: Path | None) -> Any:
    from pydantic import ValidationError

    from his_sdk.config import load_settings

    try:
        return load_settings(config_path)
    except (FileNotFoundError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        func: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"cannot import {target}: {exc}") from exc
    return func


@click.group()
@click.version_option(package_name="his-sdk")
def main() -> None:
    """HIS middleware: FHIR-shaped gRPC APIs over legacy EHRs for AI agents."""


@main.command()
@_CONFIG_OPTION
def serve(config_path: Path | None) -> None:
    """Start the gateway (gRPC with health and reflection) until SIGINT/SIGTERM."""
    settings = _settings(config_path)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from his_sdk.errors import HisError
    from his_sdk.server import serve as run

    try:
        asyncio.run(run(settings))
    except HisError as exc:
        detail = f" ({exc.diagnostics})" if exc.diagnostics else ""
        raise click.ClickException(f"{exc.message}{detail}") from exc
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--target", default="127.0.0.1:50051", show_default=True, help="host:port")
@click.option("--service", default="", help="Service name to check; empty for the server.")
@click.option("--wait", default=0.0, show_default=True, help="Seconds to retry until SERVING.")
def health(target: str, service: str, wait: float) -> None:
    """Ask a gateway's gRPC health service; exit 0 when SERVING (a readiness probe)."""
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + wait
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
            except grpc.RpcError as exc:
                name = f"unreachable ({exc.code().name})"
            if name == "SERVING":
                click.echo("SERVING")
                return
            if time.monotonic() >= deadline:
                raise click.ClickException(f"{target} is {name}")
            time.sleep(0.25)


@main.group()
def dev() -> None:
    """A local development identity provider (never for production)."""


def _issuer_dir(settings: Any) -> Path:
    if settings.auth.jwks_file is None:
        raise click.ClickException("auth.jwks_file must be set to use the dev issuer")
    return Path(settings.auth.jwks_file).parent


@dev.command("init")
@_CONFIG_OPTION
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def dev_init(config_path: Path | None, force: bool) -> None:
    """Create the dev issuer's key pair and the JWKS the gateway trusts."""
    from his_sdk.auth import DevIssuer

    settings = _settings(config_path)
    directory = _issuer_dir(settings)
    if (directory / "jwks.json").exists() and not force:
        click.echo(f"dev issuer already initialised in {directory}")
        return
    DevIssuer.init(directory, issuer=settings.auth.issuer)
    click.echo(f"dev issuer keys written to {directory}")


@dev.command("token")
@_CONFIG_OPTION
@click.option("--client-id", default="demo-agent", show_default=True, help="The agent's id.")
@click.option(
    "--scope",
    "scopes",
    default="user/Patient.rs user/Observation.rs",
    show_default=True,
    help="Space-separated SMART scopes.",
)
@click.option("--role", "roles", multiple=True, help="A role (repeatable).")
@click.option("--patient", default=None, help="Patient launch context.")
@click.option("--act", "act_subject", default=None, help="The human the agent acts for.")
@click.option("--act-fhir-user", default=None, help="That human's FHIR user (Practitioner/12).")
@click.option("--fhir-user", default=None, help="fhirUser claim of the token subject.")
@click.option("--purpose", "purpose_of_use", multiple=True, help="Purpose of use (repeatable).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def dev_token(
    config_path: Path | None,
    client_id: str,
    scopes: str,
    roles: tuple[str, ...],
    patient: str | None,
    act_subject: str | None,
    act_fhir_user: str | None,
    fhir_user: str | None,
    purpose_of_use: tuple[str, ...],
    ttl: int,
) -> None:
    """Mint an access token from the dev issuer and print it."""
    from his_sdk.auth import DevIssuer

    settings = _settings(config_path)
    directory = _issuer_dir(settings)
    if not (directory / "jwks.json").exists():
        raise click.ClickException(f"no dev issuer in {directory}; run 'his dev init' first")
    issuer = DevIssuer.load(directory)
    token = issuer.mint(
        client_id=client_id,
        audience=settings.auth.audience,
        scopes=scopes,
        roles=roles,
        patient=patient,
        act_subject=act_subject,
        act_fhir_user=act_fhir_user,
        fhir_user=fhir_user,
        ttl_seconds=ttl,
        purpose_of_use=purpose_of_use,
    )
    click.echo(token)


@dev.command("broker")
@click.option("--port", default=19092, show_default=True, help="Loopback port to listen on.")
def dev_broker(port: int) -> None:
    """Run an in-memory Kafka-protocol broker (tansu) until interrupted, for the demo."""
    import signal
    import threading

    from his_sdk.testing import TansuBroker, TansuUnavailableError

    try:
        broker = TansuBroker.start(port=port)
    except TansuUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with broker:
        click.echo(f"kafka-protocol broker on {broker.bootstrap_servers}", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


@main.group()
def legacy() -> None:
    """Work with the legacy EHR database behind the SQL adapter."""


def _default_bundles() -> list[Path]:
    for candidate in (
        Path("../shared/corpora/synthea/small"),
        Path(__file__).resolve().parent.parent / "tests" / "data" / "synthea",
    ):
        if candidate.is_dir():
            return [candidate]
    return []


@legacy.command("seed")
@click.option(
    "--url",
    default="sqlite:///.his/legacy.db",
    show_default=True,
    help="SQLAlchemy URL of the legacy database (sqlite, mysql+pymysql, postgresql+psycopg).",
)
@click.option(
    "--loader",
    default="adapters.sql:seed_synthea",
    show_default=True,
    help="Import string of the loader function.",
)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def legacy_seed(url: str, loader: str, paths: tuple[Path, ...]) -> None:
    """Load Synthea FHIR bundles (files or folders) into the OpenEMR-like schema."""
    targets = list(paths) or _default_bundles()
    if not targets:
        raise click.ClickException("no bundle paths given and no default corpus found")
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    report = _import(loader)(url, targets)
    click.echo(str(report))


def _attach_subcommands() -> None:
    from his_sdk.audit import audit
    from his_sdk.tools import mcp_command

    main.add_command(audit)
    main.add_command(mcp_command)
    # Optional packages add their own groups; his_sdk imports them only by name.
    for target in ("approval_service:approvals", "inference_bridge:models"):
        module_name, _, attr = target.partition(":")
        try:
            group = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            main.add_command(_unavailable(attr, module_name, exc))
            continue
        main.add_command(group)


def _unavailable(name: str, module_name: str, error: ImportError) -> click.Command:
    """A stand-in command that says why a group from an optional package is missing."""

    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"'his {name}' needs {module_name}, which cannot be imported here: {error}"
        )

    command.help = f"(unavailable: {module_name} cannot be imported)"
    return command


_attach_subcommands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
