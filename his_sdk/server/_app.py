"""Assemble and run the gateway: adapters, policy, handler chain, grpc.aio server, health."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc
from his_sdk.adapter import Adapter, ApprovedWrite, HealthState, Interaction, WriteOutcome
from his_sdk.audit import AuditTrail
from his_sdk.auth import TokenVerifier
from his_sdk.config import GatewaySettings
from his_sdk.policy import PolicyEngine
from his_sdk.server._auditing import CallAuditor
from his_sdk.server._break_glass import BreakGlassLog, state_engine
from his_sdk.server._handlers import AdapterHandler, ApprovalGateHandler, AuthorizationHandler
from his_sdk.server._interceptors import AuthenticationInterceptor, ErrorMappingInterceptor
from his_sdk.server._routing import AdapterRouter, load_adapter
from his_sdk.server._service import FhirService
from his_sdk.server._servicer import FhirServicer
from his_sdk.server._writes import WriteQueue, load_write_queue

if TYPE_CHECKING:
    from his_sdk.rest import RestServer
    from his_sdk.tools import ToolRegistry

__all__ = ["Gateway", "serve"]

_log = logging.getLogger(__name__)

FHIR_SERVICE = fhir_pb2.DESCRIPTOR.services_by_name["FhirService"].full_name
_PUBLIC_METHODS = (f"/{FHIR_SERVICE}/Capabilities",)
_HEALTH_INTERVAL_SECONDS = 10.0


class Gateway:
    """One gateway instance: build it from settings, ``await start()``, ``await stop()``.

    Usable as ``async with Gateway(settings) as gw:``; ``gw.port`` is the bound port.
    """

    def __init__(
        self, settings: GatewaySettings, *, adapters: list[tuple[str, Adapter]] | None = None
    ) -> None:
        self.settings = settings
        self._adapters = adapters or [(a.name, load_adapter(a)) for a in settings.adapters]
        self.router = AdapterRouter(self._adapters)
        self.verifier = TokenVerifier(settings.auth)
        self.policy = PolicyEngine.from_settings(settings.policy)
        self.state = state_engine(settings.state.url)
        self.break_glass = BreakGlassLog(self.state)
        self.audit: AuditTrail | None = None
        """The audit trail; None when ``audit.enabled`` is false."""
        if settings.audit.enabled:
            shared = settings.audit.outbox_url == settings.state.url
            self.audit = AuditTrail(settings.audit, engine=self.state if shared else None)
        self.approvals: WriteQueue | None = None
        """The approval queue; None when approvals are off or no adapter executes writes."""
        if settings.approvals.enabled and _serves_writes(self.router):
            self.approvals = load_write_queue(
                settings.approvals,
                executor=self._execute_write,
                default_url=settings.state.url,
                audit=settings.audit,
            )
        chain = AuthorizationHandler(
            ApprovalGateHandler(AdapterHandler(self.router), self.approvals),
            policy=self.policy,
            router=self.router,
            break_glass=self.break_glass,
            facts_ttl_seconds=settings.policy.patient_facts_ttl_seconds,
        )
        self.service = FhirService(
            router=self.router,
            chain=chain,
            paging=settings.paging,
            writes=self.approvals,
            auditor=CallAuditor(self.audit),
        )
        self.inference: Any = None
        """The inference bridge extension; None unless ``inference.enabled``."""
        if settings.inference.enabled:
            factory = _import(settings.inference.implementation, "inference.implementation")
            self.inference = factory(
                settings.inference.settings,
                policy=self.policy,
                facts=self.router.facts_provider,
                audit=self.audit,
                facts_ttl_seconds=settings.policy.patient_facts_ttl_seconds,
            )
        self.tools: ToolRegistry | None = None
        """The tool registry; None when ``tools.enabled`` is false."""
        if settings.tools.enabled:
            # Imported here: his_sdk.tools builds on this package's service core.
            from his_sdk.tools import ToolRegistry

            self.tools = ToolRegistry.from_settings(
                settings.tools,
                service=self.service,
                types=self.router.types(),
                max_count=settings.paging.max_count,
                policy=self.policy,
                auditor=CallAuditor(self.audit),
                approvals_configured=self.approvals is not None,
                model_tools=_model_tools(self.inference),
            )
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None
        self.port = 0
        self.rest: RestServer | None = None
        self.rest_port = 0
        self.console: RestServer | None = None
        """The reviewer console's listener; None unless ``console.enabled``."""
        self.console_port = 0

    async def start(self) -> int:
        """Start adapters and the gRPC server; return the bound port."""
        if self.audit is not None:
            await asyncio.to_thread(self.audit.start)
        for _, adapter in self._adapters:
            await adapter.start()
        if self.approvals is not None:
            await self.approvals.start()
        if self.inference is not None:
            await self.inference.start()
        options = [
            ("grpc.max_receive_message_length", self.settings.server.max_message_bytes),
            ("grpc.max_send_message_length", self.settings.server.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(
            interceptors=[
                ErrorMappingInterceptor(),
                AuthenticationInterceptor(self.verifier, _PUBLIC_METHODS),
            ],
            options=options,
        )
        fhir_pb2_grpc.add_FhirServiceServicer_to_server(FhirServicer(self.service), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        extra_services = (
            tuple(self.approvals.add_to_server(server)) if self.approvals is not None else ()
        )
        if self.tools is not None:
            from his_sdk._generated.his.v1 import tools_pb2, tools_pb2_grpc
            from his_sdk.tools import ToolRegistryServicer

            tools_pb2_grpc.add_ToolRegistryServicer_to_server(
                ToolRegistryServicer(self.tools), server
            )
            extra_services += (tools_pb2.DESCRIPTOR.services_by_name["ToolRegistry"].full_name,)
        if self.inference is not None:
            extra_services += tuple(self.inference.add_to_server(server))
        if self.settings.server.reflection:
            reflection.enable_server_reflection(
                (
                    FHIR_SERVICE,
                    *extra_services,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
        address = f"{self.settings.server.host}:{self.settings.server.port}"
        if self.settings.server.tls_cert and self.settings.server.tls_key:
            credentials = grpc.ssl_server_credentials(
                [(_read(self.settings.server.tls_key), _read(self.settings.server.tls_cert))]
            )
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        await server.start()
        self._server = server
        if self.settings.rest.enabled:
            self.rest_port = await self._start_rest()
        if self.settings.console.enabled:
            self.console_port = await self._start_console()
        await self._update_health()
        self._health_task = asyncio.create_task(self._health_loop())
        _log.info(
            "gateway listening on %s:%d serving %s",
            self.settings.server.host,
            self.port,
            self.router.describe(),
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight ones finish within ``grace``, close adapters."""
        if self._health_task:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
        if self.rest is not None:
            await self.rest.stop(self.settings.rest.grace_seconds if grace is None else grace)
            self.rest = None
        if self.console is not None:
            await self.console.stop(self.settings.console.grace_seconds if grace is None else grace)
            self.console = None
        if self._server is not None:
            await self.health.enter_graceful_shutdown()
            await self._server.stop(self.settings.server.grace_seconds if grace is None else grace)
            self._server = None
        if self.approvals is not None:
            await self.approvals.close()
        if self.inference is not None:
            await self.inference.close()
        for _, adapter in self._adapters:
            await adapter.close()
        if self.audit is not None:
            # Flushes buffered read events and drains what the broker will take.
            await asyncio.to_thread(self.audit.close)
        self.state.dispose()

    async def _start_rest(self) -> int:
        # Imported here: the facade imports the service core from this package, and
        # gRPC-only deployments never load starlette and uvicorn.
        from his_sdk.rest import FhirRestApp, RestServer

        app = FhirRestApp(
            self.service, self.verifier, rest=self.settings.rest, auth=self.settings.auth
        )
        self.rest = RestServer(
            app,
            self.settings.rest,
            tls_cert=self.settings.server.tls_cert,
            tls_key=self.settings.server.tls_key,
        )
        port = await self.rest.start()
        _log.info("FHIR REST facade listening on %s:%d", self.settings.rest.host, port)
        return port

    async def _start_console(self) -> int:
        # The console lives in approval_service; it is loaded by import string like the queue,
        # so this package never imports it directly.
        from his_sdk.config import RestSettings
        from his_sdk.rest import RestServer

        console = self.settings.console
        if self.approvals is None:
            raise ValueError("console.enabled needs the approval queue (approvals.enabled)")
        module_name, _, attr = console.implementation.partition(":")
        if not module_name or not attr:
            raise ValueError(
                f"console.implementation must be 'module:factory', got {console.implementation!r}"
            )
        factory = getattr(importlib.import_module(module_name), attr)
        tls_cert, tls_key = self.settings.server.tls_cert, self.settings.server.tls_key
        app = factory(self.approvals, console, tls=bool(tls_cert and tls_key))
        self.console = RestServer(
            app,
            RestSettings(
                host=console.host,
                port=console.port,
                access_log=console.access_log,
                grace_seconds=console.grace_seconds,
            ),
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        port = await self.console.start()
        _log.info("reviewer console listening on %s:%d", console.host, port)
        return port

    async def _execute_write(self, write: ApprovedWrite) -> WriteOutcome:
        # The approval queue's only way to the EHR: the adapter serving the type.
        adapter, _ = self.router.route(write.resource_type, write.interaction)
        return await adapter.execute(write)

    async def wait(self) -> None:
        """Block until the server terminates."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=0)

    async def _update_health(self) -> None:
        states = []
        for name, adapter in self._adapters:
            try:
                status = await adapter.health()
            except Exception:
                _log.exception("health probe of adapter %s failed", name)
                states.append(HealthState.NOT_SERVING)
                continue
            if status.state is not HealthState.SERVING:
                _log.warning("adapter %s is %s: %s", name, status.state.value, status.detail)
            states.append(status.state)
        if self.audit is not None:
            audit = self.audit.health()
            if audit.status != "serving":
                _log.warning("audit trail is %s: backlog %d", audit.status, audit.backlog)
            if audit.status == "failing":
                states.append(HealthState.NOT_SERVING)
        serving = all(s is not HealthState.NOT_SERVING for s in states)
        code = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set("", code)
        await self.health.set(FHIR_SERVICE, code)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(_HEALTH_INTERVAL_SECONDS)
            await self._update_health()


def _serves_writes(router: AdapterRouter) -> bool:
    writes = {Interaction.CREATE, Interaction.UPDATE, Interaction.DELETE}
    return any(cap.interactions & writes for cap in router.types().values())


def _read(path: Path) -> bytes:
    return Path(path).read_bytes()


async def serve(settings: GatewaySettings) -> None:
    """Run a gateway until SIGINT or SIGTERM, then shut down gracefully."""
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"his gateway listening on {settings.server.host}:{gateway.port}", flush=True)
    if gateway.rest is not None:
        print(
            f"FHIR REST facade on {gateway.rest.scheme}://{settings.rest.host}:{gateway.rest_port}",
            flush=True,
        )
    if gateway.console is not None:
        print(
            f"reviewer console on {gateway.console.scheme}://{settings.console.host}:"
            f"{gateway.console_port}",
            flush=True,
        )
    await stop.wait()
    _log.info("shutting down")
    await gateway.stop()


def _import(target: str, setting: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{setting}: cannot import {target!r}: {exc}") from exc


def _model_tools(inference: Any) -> Any:
    """The inference extension's tool source (``tool_source()``), if it offers one."""
    source = getattr(inference, "tool_source", None)
    return source() if callable(source) else None
