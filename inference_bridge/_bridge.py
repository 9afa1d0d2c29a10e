"""The inference service core: authorize, pre-process, route, post-process, audit."""

from __future__ import annotations

import asyncio
import datetime
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.resource import Resource

import his_sdk.errors

from ._audit import InferenceAuditRecord, InferenceAuditSink, InferenceOutcome
from ._backend import InferenceBackend
from ._cases import CaseLibrary, Neighbour
from ._catalog import Backend, Catalog, ModelEntry, Placement
from ._errors import InputTooLargeError
from ._fhir import collection_bundle, model_device, provenance, subject_reference
from ._processors import (
    ConsultContext,
    ModelInputs,
    Postprocessor,
    Preprocessor,
    ResultContext,
    SpecialistFinding,
    load_processor,
)
from ._routing import PlacementStatus, Router, RoutingPreferences
from ._settings import InferenceSettings
from ._tensors import EncodedInputs, Tensors, encode_inputs

if TYPE_CHECKING:
    # Annotations only. The gateway's config imports this package's settings, and
    # his_sdk.auth, his_sdk.policy and his_sdk.server import that config, so nothing here
    # imports them when the package loads.
    import his_sdk.adapter
    import his_sdk.auth
    import his_sdk.policy
    import his_sdk.server

__all__ = [
    "ConsultRequest",
    "ConsultResult",
    "InferenceBridge",
    "InferenceProvenance",
    "InferenceRequest",
    "InferenceResult",
    "ModelView",
    "Priority",
    "SpecialistOpinion",
]

_CALLER_ERRORS = (
    his_sdk.errors.InvalidRequestError,
    his_sdk.errors.NotFoundError,
    his_sdk.errors.ResourceExhaustedError,
)
_DENIALS = (his_sdk.errors.AuthenticationError, his_sdk.errors.PermissionDeniedError)


class Priority(enum.StrEnum):
    """Clinical urgency of a request; mapped to Triton priority levels."""

    ROUTINE = "routine"
    STAT = "stat"


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """One model run asked for by a caller.

    Attributes:
        model: Model name, or ``name@version``.
        version: Model version; None for the highest.
        patient_id: The patient the inputs are about; None for de-identified population
            work (results then refer to the request instead of a patient).
        resources: FHIR input resources (validated models).
        features: Coded feature values by ``system|code`` (or bare code).
        priority: Urgency.
        preferences: Soft routing preferences.
        timeout: Seconds the caller waits; None uses the gateway default.
    """

    model: str
    version: str | None = None
    patient_id: str | None = None
    resources: tuple[Resource, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)
    priority: Priority = Priority.ROUTINE
    preferences: RoutingPreferences = field(default_factory=RoutingPreferences)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ConsultRequest:
    """A consult of specialists, optionally decided by the configured generalist.

    Attributes:
        specialists: Model names (or ``name@version``) to run in parallel.
        patient_id: As in :class:`InferenceRequest`.
        resources: FHIR input resources, shared by all specialists.
        features: Coded feature values, shared by all specialists.
        top_k: Reference cases per specialist; None uses the configured default.
        generalist: Whether to ask the configured generalist model too.
        priority: Urgency.
        preferences: Soft routing preferences.
        timeout: Seconds the caller waits for the whole consult.
    """

    specialists: tuple[str, ...]
    patient_id: str | None = None
    resources: tuple[Resource, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)
    top_k: int | None = None
    generalist: bool = False
    priority: Priority = Priority.ROUTINE
    preferences: RoutingPreferences = field(default_factory=RoutingPreferences)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class InferenceProvenance:
    """Where a result came from.

    Attributes:
        inference_id: The run's id (KServe v2 request id, results' identifier).
        model: Model name.
        version: Model version.
        backend: ``triton`` or ``torch``.
        endpoint: Server ``host:port``; empty for torch.
        accelerator: Accelerator kind.
        input_sha256: Hash of the encoded inputs.
        attempts: Attempts made.
        failed_placements: Placements that failed first.
        latency_ms: Wall time of the routed call.
    """

    inference_id: str
    model: str
    version: str
    backend: str
    endpoint: str
    accelerator: str
    input_sha256: str
    attempts: int
    failed_placements: tuple[str, ...]
    latency_ms: float


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """The FHIR answer of one model run.

    Attributes:
        entry: The model.
        results: The result resources (Observation, RiskAssessment or DiagnosticReport).
        device: The model Device at the answering placement.
        provenance_resource: The Provenance of ``results``.
        provenance: The same facts as a typed value.
        prediction: The first prediction value.
        outputs: The raw output tensors.
        neighbours: Similar confirmed reference cases (consults only), most similar first.
    """

    entry: ModelEntry
    results: tuple[DomainResource, ...]
    device: DomainResource
    provenance_resource: DomainResource
    provenance: InferenceProvenance
    prediction: float
    outputs: Tensors
    neighbours: tuple[Neighbour, ...] = ()

    @property
    def resources(self) -> tuple[DomainResource, ...]:
        """Results, then the Device and the Provenance."""
        return (*self.results, self.device, self.provenance_resource)


@dataclass(frozen=True, slots=True)
class SpecialistOpinion:
    """One specialist's part of a consult.

    Attributes:
        result: Its inference result.
        neighbours: The most similar confirmed reference cases, most similar first.
    """

    result: InferenceResult
    neighbours: tuple[Neighbour, ...]


@dataclass(frozen=True, slots=True)
class ConsultResult:
    """The consult bundle.

    Attributes:
        request_id: The gateway call's request id.
        opinions: One per specialist, in request order.
        generalist: The generalist's result, when asked for.
        bundle: Every result, Device and Provenance as a ``collection`` Bundle.
        text: A compact rendering for an LLM.
    """

    request_id: str
    opinions: tuple[SpecialistOpinion, ...]
    generalist: InferenceResult | None
    bundle: Bundle
    text: str


@dataclass(frozen=True, slots=True)
class ModelView:
    """A catalog entry with the live state of its placements.

    Attributes:
        entry: The catalog entry.
        placements: Routing's view of each placement.
    """

    entry: ModelEntry
    placements: tuple[PlacementStatus, ...]


class _FactsCache:
    def __init__(
        self, provider: his_sdk.adapter.PatientFactsProvider | None, ttl_seconds: float
    ) -> None:
        self._provider = provider
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, his_sdk.adapter.PatientFacts]] = {}

    async def get(self, patient_id: str) -> his_sdk.adapter.PatientFacts | None:
        if self._provider is None:
            return None
        hit = self._entries.get(patient_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        facts = await self._provider.patient_facts(patient_id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[patient_id] = (time.monotonic() + self._ttl, facts)
        return facts


@dataclass
class _Run:
    """What one model run has learned so far (for its audit record)."""

    entry: ModelEntry | None
    inference_id: str
    started: float
    started_at: datetime.datetime
    encoded: EncodedInputs | None = None
    placement: Placement | None = None
    attempts: int = 0
    failed: tuple[str, ...] = ()
    result_ids: tuple[str, ...] = ()


class InferenceBridge:
    """Runs catalog models for authenticated callers and answers in FHIR.

    Authorization: a model run creates a result of the model's ``fhir.output_type`` about
    the named patient, so the policy decides ``create`` on that type in that patient's
    compartment (SMART ``create`` scope, role, care team, consent), exactly as it would for
    writing that resource; a run naming no patient is a population-level request. Entries
    with ``allowed_roles`` additionally need one of those roles. Break-glass does not apply.

    Args:
        settings: Bridge settings.
        policy: The gateway's policy engine.
        catalog: The models; None loads ``settings.catalog_files`` (or the shipped catalog)
            with ``settings.placements`` applied.
        facts: Care team and consent of patients (the gateway's adapter); without it, runs
            naming a patient are denied by the shipped policy.
        audit: Receives one record per model run.
        backends: Backends by kind; None builds the Triton and torch backends.
        facts_ttl_seconds: How long patient facts are reused.
    """

    def __init__(
        self,
        settings: InferenceSettings,
        *,
        policy: his_sdk.policy.PolicyEngine,
        catalog: Catalog | None = None,
        facts: his_sdk.adapter.PatientFactsProvider | None = None,
        audit: InferenceAuditSink | None = None,
        backends: Mapping[Backend, InferenceBackend] | None = None,
        facts_ttl_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        if catalog is None:
            catalog = Catalog.load(*settings.catalog_files)
        if settings.placements:
            catalog = catalog.with_placements(settings.placements)
        self.catalog = catalog
        self._policy = policy
        self._facts = _FactsCache(facts, facts_ttl_seconds)
        self._audit = audit
        if backends is None:
            backends = _default_backends(settings, catalog)
        self._backends = dict(backends)
        self.router = Router(catalog, self._backends, settings)
        self._pre: dict[str, Preprocessor] = {}
        self._post: dict[str, Postprocessor] = {}
        self._cases: dict[str, CaseLibrary] = {}
        self._devices: dict[tuple[str, str], Device] = {}
        for entry in catalog.entries():
            self._pre[entry.key] = load_processor(entry.fhir.preprocessor)
            self._post[entry.key] = load_processor(entry.fhir.postprocessor)
            if entry.case_library is not None:
                self._cases[entry.key] = CaseLibrary.load(entry.case_library)
        generalist = settings.consult.generalist
        self._generalist = catalog.get(generalist) if generalist else None

    async def start(self) -> None:
        """Probe placements and start the health loop."""
        await self.router.start()

    async def close(self) -> None:
        """Stop probing and close the backends."""
        await self.router.close()
        await asyncio.gather(*(b.close() for b in self._backends.values()))

    async def __aenter__(self) -> InferenceBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Catalog ------------------------------------------------------------------------------

    def list_models(
        self,
        call: his_sdk.server.CallContext,
        *,
        task: str | None = None,
        modality: str | None = None,
    ) -> list[ModelView]:
        """The catalog (any authenticated caller may read it; it holds no patient data)."""
        _principal(call)
        return [self._view(e) for e in self.catalog.find(task=task, modality=modality)]

    def get_model(
        self, call: his_sdk.server.CallContext, name: str, version: str | None = None
    ) -> ModelView:
        """One catalog entry.

        Raises:
            ModelNotFoundError: No such model.
        """
        _principal(call)
        return self._view(self.catalog.get(name, version or None))

    def _view(self, entry: ModelEntry) -> ModelView:
        return ModelView(entry, tuple(self.router.status(entry)))

    # Inference ----------------------------------------------------------------------------

    async def infer(
        self, call: his_sdk.server.CallContext, request: InferenceRequest
    ) -> InferenceResult:
        """Run one model.

        Raises:
            his_sdk.errors.AuthenticationError: No verified caller.
            his_sdk.errors.PermissionDeniedError: The policy denies the result type.
            ModelNotFoundError: Unknown model.
            his_sdk.errors.InvalidRequestError: The inputs do not make the model's tensors.
            InputTooLargeError: The encoded input exceeds the limits.
            his_sdk.errors.DeadlineExceededError: The deadline passed.
            NoPlacementAvailableError: No placement answered.
        """
        run = _Run(None, call.request_id, time.monotonic(), _now())
        try:
            deadline = self._deadline(request.timeout)
            entry = run.entry = self.catalog.get(request.model, request.version)
            await self._authorize(call, entry, request.patient_id)
            inputs = ModelInputs(request.resources, request.features, request.patient_id)
            result = await self._run(
                call,
                run,
                entry,
                inputs,
                patient_id=request.patient_id,
                deadline=deadline,
                priority=request.priority,
                preferences=request.preferences,
                top_k=0,
            )
        except BaseException as exc:
            await self._record(call, run, "infer", request.patient_id, exc)
            raise
        await self._record(call, run, "infer", request.patient_id, None)
        return result

    async def consult(
        self, call: his_sdk.server.CallContext, request: ConsultRequest
    ) -> ConsultResult:
        """Run specialists in parallel, retrieve similar cases, optionally ask the generalist.

        Every model is authorized before any runs; one failing specialist fails the consult.

        Raises:
            his_sdk.errors.InvalidRequestError: No or repeated specialists, a generalist
                named as specialist, a bad ``top_k``, or no generalist configured when asked.
            Everything :meth:`infer` raises.
        """
        try:
            deadline = self._deadline(request.timeout)
            entries, generalist, top_k = self._plan_consult(request)
        except BaseException as exc:
            # The request names no runnable set of models: one record for the whole call.
            run = _Run(None, call.request_id, time.monotonic(), _now())
            await self._record(call, run, "consult", request.patient_id, exc)
            raise
        planned = [*entries, *([generalist] if generalist is not None else [])]
        runs = [
            (e, _Run(e, f"{call.request_id}:{e.name}", time.monotonic(), _now())) for e in planned
        ]
        try:
            for entry, _ in runs:
                await self._authorize(call, entry, request.patient_id)
            _check_features(entries, request.features)
        except BaseException as exc:
            for _, run in runs:
                await self._record(call, run, "consult", request.patient_id, exc)
            raise
        inputs = ModelInputs(
            request.resources, request.features, request.patient_id, shared=len(entries) > 1
        )
        outcomes = await asyncio.gather(
            *(
                self._audited_run(call, run, entry, inputs, request, deadline, top_k)
                for entry, run in runs[: len(entries)]
            ),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            if generalist is not None:
                await self._record(call, runs[-1][1], "consult", request.patient_id, errors[0])
            raise errors[0]
        opinions = tuple(
            SpecialistOpinion(o, o.neighbours) for o in outcomes if isinstance(o, InferenceResult)
        )
        text = render_consult(call.request_id, request.patient_id, opinions, None)
        decided: InferenceResult | None = None
        if generalist is not None:
            findings = tuple(
                SpecialistFinding(
                    o.result.entry, o.result.prediction, o.neighbours, o.result.results
                )
                for o in opinions
            )
            decided = await self._audited_run(
                call,
                runs[-1][1],
                generalist,
                ModelInputs((), {}, request.patient_id, ConsultContext(findings, text)),
                request,
                deadline,
                0,
            )
            text = render_consult(call.request_id, request.patient_id, opinions, decided)
        everything: list[Resource] = [r for o in opinions for r in o.result.resources]
        if decided is not None:
            everything += decided.resources
        bundle = collection_bundle(everything, _now())
        return ConsultResult(call.request_id, opinions, decided, bundle, text)

    def _plan_consult(
        self, request: ConsultRequest
    ) -> tuple[list[ModelEntry], ModelEntry | None, int]:
        top_k = request.top_k or self.settings.consult.default_top_k
        if not 1 <= top_k <= self.settings.consult.max_top_k:
            raise his_sdk.errors.InvalidRequestError(
                f"top_k must be between 1 and {self.settings.consult.max_top_k}"
            )
        if not request.specialists:
            raise his_sdk.errors.InvalidRequestError("a consult needs at least one specialist")
        entries = [self.catalog.get(name) for name in request.specialists]
        if len({e.key for e in entries}) != len(entries):
            raise his_sdk.errors.InvalidRequestError("a specialist is named twice")
        for entry in entries:
            if entry.task == "generalist":
                raise his_sdk.errors.InvalidRequestError(f"{entry.key} is a generalist")
        generalist = None
        if request.generalist:
            if self._generalist is None:
                raise his_sdk.errors.InvalidRequestError("no generalist model is configured")
            generalist = self._generalist
            top_k = max(top_k, int(generalist.fhir.options.get("neighbours", 0)))
        return entries, generalist, top_k

    async def _audited_run(
        self,
        call: his_sdk.server.CallContext,
        run: _Run,
        entry: ModelEntry,
        inputs: ModelInputs,
        request: ConsultRequest,
        deadline: float,
        top_k: int,
    ) -> InferenceResult:
        try:
            result = await self._run(
                call,
                run,
                entry,
                inputs,
                patient_id=request.patient_id,
                deadline=deadline,
                priority=request.priority,
                preferences=request.preferences,
                top_k=top_k,
            )
        except BaseException as exc:
            await self._record(call, run, "consult", request.patient_id, exc)
            raise
        await self._record(call, run, "consult", request.patient_id, None)
        return result

    def _neighbours(self, entry: ModelEntry, outputs: Tensors, k: int) -> tuple[Neighbour, ...]:
        library = self._cases.get(entry.key)
        name = entry.embedding_output
        if library is None or name is None or k <= 0:
            return ()
        embedding = np.asarray(outputs[name])
        if embedding.ndim < 1 or embedding.shape[0] < 1:
            raise his_sdk.errors.UpstreamDataError(f"{entry.key} answered an empty embedding")
        try:
            return tuple(library.nearest(embedding.reshape(embedding.shape[0], -1)[0], k))
        except ValueError as exc:
            raise his_sdk.errors.UpstreamDataError(
                f"{entry.key} answered an embedding the case library cannot search"
            ) from exc

    async def _run(
        self,
        call: his_sdk.server.CallContext,
        run: _Run,
        entry: ModelEntry,
        inputs: ModelInputs,
        *,
        patient_id: str | None,
        deadline: float,
        priority: Priority,
        preferences: RoutingPreferences,
        top_k: int,
    ) -> InferenceResult:
        arrays = self._pre[entry.key](entry, inputs)
        try:
            encoded = encode_inputs(arrays, {t.name: t.datatype for t in entry.inputs})
        except ValueError as exc:
            raise his_sdk.errors.InvalidRequestError(
                f"the inputs of {entry.key} do not match its schema", diagnostics=str(exc)
            ) from exc
        _check_shapes(entry, encoded)
        run.encoded = encoded
        if encoded.nbytes > self.settings.max_input_bytes:
            raise InputTooLargeError(
                f"the input of {entry.key} is {encoded.nbytes} bytes; the gateway accepts at "
                f"most {self.settings.max_input_bytes}"
            )
        level = self.settings.priority_levels.get(priority.value, 0)
        started = time.perf_counter()
        routed = await self.router.infer(
            entry,
            encoded,
            request_id=run.inference_id,
            deadline=deadline,
            priority=level,
            preferences=preferences,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        run.placement, run.attempts, run.failed = routed.placement, routed.attempts, routed.failed
        device = self._device(entry, routed.placement)
        issued = _now()
        neighbours = self._neighbours(entry, routed.outputs, top_k)
        context = ResultContext(
            entry=entry,
            outputs=routed.outputs,
            subject=subject_reference(patient_id, run.inference_id),
            request_id=run.inference_id,
            issued=issued,
            device_reference=f"Device/{device.id}",
            basis=tuple(f"{r.get_resource_type()}/{r.id}" for r in inputs.resources if r.id),
            neighbours=neighbours,
            consult=inputs.consult,
        )
        results = tuple(self._post[entry.key](context))
        if not results or any(not r.id for r in results):
            raise RuntimeError(f"the postprocessor of {entry.key} returned a result without an id")
        run.result_ids = tuple(f"{r.get_resource_type()}/{r.id}" for r in results)
        record = provenance(
            targets=results,
            device=device,
            entry=entry,
            placement=routed.placement,
            input_sha256=encoded.sha256,
            recorded=issued,
            principal=call.principal,
        )
        return InferenceResult(
            entry=entry,
            results=results,
            device=device,
            provenance_resource=record,
            provenance=_provenance_value(run, entry, routed.placement, encoded, latency_ms),
            prediction=context.prediction(),
            outputs=routed.outputs,
            neighbours=neighbours,
        )

    def _device(self, entry: ModelEntry, placement: Placement) -> Device:
        # The Device of a model at a placement never changes; build and validate it once.
        key = (entry.key, placement.label)
        device = self._devices.get(key)
        if device is None:
            device = self._devices[key] = model_device(entry, placement)
        return device

    # Policy, deadlines, audit ---------------------------------------------------------------

    async def _authorize(
        self, call: his_sdk.server.CallContext, entry: ModelEntry, patient_id: str | None
    ) -> None:
        principal = _principal(call)
        if entry.allowed_roles and not principal.roles & set(entry.allowed_roles):
            raise his_sdk.errors.PermissionDeniedError(
                f"{entry.key} may be run only by the roles {', '.join(entry.allowed_roles)}"
            )
        # At call time: see the note on the imports at the top of this module.
        from his_sdk.policy import AccessRequest

        facts = await self._facts.get(patient_id) if patient_id else None
        request = AccessRequest("create", entry.fhir.output_type, patient_id, None)
        decision = self._policy.decide(principal, request, facts)
        if not decision.allowed:
            raise his_sdk.errors.PermissionDeniedError(
                decision.message or "access denied by policy", diagnostics=decision.reason_code
            )
        if facts is not None and not facts.exists:
            raise his_sdk.errors.NotFoundError(f"no Patient/{patient_id}")

    def _deadline(self, timeout: float | None) -> float:
        seconds = self.settings.default_timeout_seconds if timeout is None else timeout
        if seconds <= 0:
            raise his_sdk.errors.DeadlineExceededError("the call's deadline has already passed")
        return time.monotonic() + min(seconds, self.settings.max_timeout_seconds)

    async def _record(
        self,
        call: his_sdk.server.CallContext,
        run: _Run,
        operation: str,
        patient_id: str | None,
        error: BaseException | None,
    ) -> None:
        if self._audit is None:
            return
        entry, placement = run.entry, run.placement
        await self._audit(
            InferenceAuditRecord(
                request_id=call.request_id,
                inference_id=run.inference_id,
                operation=operation,
                model=entry.name if entry else "",
                version=entry.version if entry else "",
                output_type=entry.fhir.output_type if entry else "",
                backend=placement.backend.value if placement else None,
                endpoint=placement.endpoint if placement else None,
                accelerator=placement.accelerator if placement else None,
                input_sha256=run.encoded.sha256 if run.encoded else None,
                principal=call.principal,
                patient_id=patient_id,
                outcome=_outcome(error),
                error=error,
                attempts=run.attempts,
                failed_placements=run.failed,
                result_ids=run.result_ids,
                started_at=run.started_at,
                duration_ms=(time.monotonic() - run.started) * 1000,
            )
        )


def _default_backends(
    settings: InferenceSettings, catalog: Catalog
) -> dict[Backend, InferenceBackend]:
    kinds = {p.backend for e in catalog.entries() for p in e.placements}
    backends: dict[Backend, InferenceBackend] = {}
    # Imported on demand: a torch-only deployment need not install tritonclient.
    if Backend.TRITON in kinds:
        from ._triton import TritonBackend

        backends[Backend.TRITON] = TritonBackend(settings.triton)
    if Backend.TORCH in kinds:
        from ._torch import TorchBackend

        backends[Backend.TORCH] = TorchBackend(settings.torch)
    return backends


def _principal(call: his_sdk.server.CallContext) -> his_sdk.auth.Principal:
    if call.principal is None:
        raise his_sdk.errors.AuthenticationError("a bearer token is required")
    return call.principal


def _check_features(entries: Sequence[ModelEntry], features: Mapping[str, float]) -> None:
    known = {key for e in entries for f in e.fhir.features for key in (f.key, f.code)}
    unknown = sorted(key for key in features if key not in known)
    if unknown:
        raise his_sdk.errors.InvalidRequestError(
            f"{len(unknown)} features are inputs of none of the specialists",
            expression=[f"features[{key}]" for key in unknown],
        )


def _check_shapes(entry: ModelEntry, encoded: EncodedInputs) -> None:
    for spec, tensor in zip(entry.inputs, encoded.tensors, strict=True):
        if len(spec.shape) != len(tensor.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, tensor.shape, strict=True)
        ):
            raise his_sdk.errors.InvalidRequestError(
                f"input {spec.name} of {entry.key} has shape {list(tensor.shape)}, the schema "
                f"says {list(spec.shape)}"
            )


def _provenance_value(
    run: _Run, entry: ModelEntry, placement: Placement, encoded: EncodedInputs, latency_ms: float
) -> InferenceProvenance:
    return InferenceProvenance(
        inference_id=run.inference_id,
        model=entry.name,
        version=entry.version,
        backend=placement.backend.value,
        endpoint=placement.endpoint,
        accelerator=placement.accelerator,
        input_sha256=encoded.sha256,
        attempts=run.attempts,
        failed_placements=run.failed,
        latency_ms=latency_ms,
    )


def _outcome(error: BaseException | None) -> InferenceOutcome:
    if error is None:
        return InferenceOutcome.SUCCESS
    if isinstance(error, _DENIALS):
        return InferenceOutcome.DENIED
    if isinstance(error, _CALLER_ERRORS):
        return InferenceOutcome.INVALID
    return InferenceOutcome.FAILED


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _format_prediction(result: InferenceResult) -> str:
    entry = result.entry
    display = entry.fhir.result_code.display or entry.fhir.result_code.code
    if entry.task == "regression":
        unit = entry.fhir.options.get("unit", "")
        return f"{display} = {result.prediction:.1f} {unit}".rstrip()
    threshold = float(entry.fhir.options.get("high_risk_threshold", 0.5))
    risk = "high" if result.prediction >= threshold else "low"
    return f"P({display}) = {result.prediction:.3f} ({risk} risk)"


def _format_card(entry: ModelEntry) -> str:
    metrics = ", ".join(f"{k} {v:g}" for k, v in sorted(entry.card.metrics.items())[:3])
    return f"{entry.task}, {entry.card.validation_status}" + (
        f"; held-out {metrics}" if metrics else ""
    )


def _format_neighbours(entry: ModelEntry, neighbours: Sequence[Neighbour]) -> str:
    listed = ", ".join(f"{n.label} ({n.similarity:.3f})" for n in neighbours)
    mean = sum(n.value for n in neighbours) / len(neighbours)
    if entry.task == "classification":
        positive = str(entry.fhir.options.get("positive_label", "positive"))
        count = sum(1 for n in neighbours if n.value >= 0.5)
        summary = f"{count}/{len(neighbours)} {positive}"
    else:
        summary = f"mean {mean:.1f}"
    return f"{len(neighbours)} most similar confirmed cases (cosine): {listed}; {summary}"


def render_consult(
    request_id: str,
    patient_id: str | None,
    opinions: Sequence[SpecialistOpinion],
    generalist: InferenceResult | None,
) -> str:
    """The consult as compact text for an LLM: one block per specialist, then the decision."""
    about = f"Patient/{patient_id}" if patient_id else "a de-identified case"
    lines = [f"Consult {request_id} about {about}: {len(opinions)} specialist(s)."]
    for opinion in opinions:
        entry = opinion.result.entry
        lines.append(f"- {entry.key} [{_format_card(entry)}]: {_format_prediction(opinion.result)}")
        if opinion.neighbours:
            lines.append(f"  {_format_neighbours(entry, opinion.neighbours)}")
    if generalist is not None:
        lines.append(f"Generalist {generalist.entry.key}: {_format_prediction(generalist)}")
    return "\n".join(lines)
