"""Pre- and post-processors between FHIR and tensors, and the shipped implementations.

A catalog entry names its processors by import string. A preprocessor turns the request's
FHIR resources and coded features into input tensors; only numbers derived from coded values
leave the gateway, never names, identifiers or free text. A postprocessor turns output
tensors into FHIR resources; the bridge adds the Device, the Provenance and the identifiers.
"""

from __future__ import annotations

import datetime
import importlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.riskassessment import RiskAssessment

import his_sdk.errors

from ._cases import Neighbour
from ._catalog import FeatureSpec, ModelEntry
from ._tensors import Tensors

__all__ = [
    "CodedFeatures",
    "ConsultContext",
    "ConsultFeatures",
    "DiagnosticReportResult",
    "ModelInputs",
    "ObservationResult",
    "Postprocessor",
    "Preprocessor",
    "ResultContext",
    "RiskAssessmentResult",
    "SpecialistFinding",
    "load_processor",
]

RESULT_IDENTIFIER_SYSTEM = "https://his-sdk.dev/fhir/NamingSystem/inference-request"
"""Identifier system of the request id on every result (links a result to its audit record)."""
_RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
_REPORT_CODE_SYSTEM = "https://his-sdk.dev/fhir/CodeSystem/inference-result"
_UCUM = "http://unitsofmeasure.org"
_REJECTED_STATUSES = frozenset({"entered-in-error", "cancelled"})


@dataclass(frozen=True, slots=True)
class SpecialistFinding:
    """One specialist's answer inside a consult.

    Attributes:
        entry: The specialist.
        prediction: Its prediction for the case (first batch row).
        neighbours: The most similar confirmed reference cases, most similar first.
        resources: The FHIR results it produced.
    """

    entry: ModelEntry
    prediction: float
    neighbours: tuple[Neighbour, ...]
    resources: tuple[DomainResource, ...]


@dataclass(frozen=True, slots=True)
class ConsultContext:
    """What the specialists of a consult found, for a generalist to decide with.

    Attributes:
        findings: One finding per specialist, in request order.
        text: The compact rendering an LLM reads.
    """

    findings: tuple[SpecialistFinding, ...]
    text: str

    def finding(self, model_name: str) -> SpecialistFinding:
        """The finding of the specialist named ``model_name``.

        Raises:
            his_sdk.errors.InvalidRequestError: That specialist was not consulted.
        """
        for finding in self.findings:
            if finding.entry.name == model_name:
                return finding
        raise his_sdk.errors.InvalidRequestError(
            f"the generalist needs specialist {model_name} in the consult"
        )


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """The de-identification boundary: what a preprocessor may read.

    Attributes:
        resources: Validated FHIR input resources.
        features: Coded feature values by ``system|code`` (or bare code when unambiguous).
        patient_id: The patient the call is about, if named; input resources must not refer
            to another one.
        consult: The specialists' findings, for generalists.
        shared: The inputs serve several models (a consult): features and resources that
            this model does not use are skipped instead of refused.
    """

    resources: tuple[Resource, ...] = ()
    features: Mapping[str, float] | None = None
    patient_id: str | None = None
    consult: ConsultContext | None = None
    shared: bool = False


@dataclass(frozen=True, slots=True)
class ResultContext:
    """What a postprocessor gets: the outputs and the references it must use.

    Attributes:
        entry: The model.
        outputs: Output tensors by name.
        subject: The ``subject`` Reference (the patient, or the request by identifier).
        request_id: The request id (also set as each result's identifier).
        issued: When the result was produced.
        device_reference: ``Device/<id>`` of the model at the placement that answered.
        basis: References of the input resources that have an id.
        neighbours: Similar reference cases, when a consult retrieved them.
        consult: The consult context, for generalists.
    """

    entry: ModelEntry
    outputs: Tensors
    subject: dict[str, Any]
    request_id: str
    issued: datetime.datetime
    device_reference: str
    basis: tuple[str, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    consult: ConsultContext | None = None

    def prediction(self) -> float:
        """The first value of the prediction output."""
        array = self.outputs[self.entry.prediction_output]
        if array.size == 0:
            raise his_sdk.errors.UpstreamDataError(
                f"{self.entry.key} answered an empty {self.entry.prediction_output}"
            )
        value = float(np.asarray(array).reshape(-1)[0])
        if not math.isfinite(value):
            raise his_sdk.errors.UpstreamDataError(f"{self.entry.key} answered a non-finite value")
        return value

    def identifier(self) -> list[dict[str, str]]:
        """The request-id identifier every result carries."""
        return [{"system": RESULT_IDENTIFIER_SYSTEM, "value": self.request_id}]


class Preprocessor(Protocol):
    """Turns FHIR inputs into the model's input tensors."""

    def __call__(self, entry: ModelEntry, inputs: ModelInputs) -> Tensors:
        """The input tensors by name.

        Raises:
            his_sdk.errors.InvalidRequestError: The inputs cannot make a valid tensor.
        """
        ...


class Postprocessor(Protocol):
    """Turns output tensors into FHIR resources."""

    def __call__(self, context: ResultContext) -> list[DomainResource]:
        """The result resources, each with an id."""
        ...


def load_processor(import_string: str) -> Any:
    """Import ``module:attribute``; a class is instantiated without arguments.

    Raises:
        ValueError: The string is malformed or names nothing callable.
        ImportError: The module cannot be imported.
    """
    module_name, _, attribute = import_string.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"processor {import_string!r} must look like 'module:attribute'")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, type):
        target = target()
    if not callable(target):
        raise ValueError(f"processor {import_string!r} is not callable")
    return target


def _invalid(message: str, *, expression: list[str] | None = None) -> his_sdk.errors.HisError:
    return his_sdk.errors.InvalidRequestError(message, expression=expression)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _invalid(f"{where} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _invalid(f"{where} must be finite")
    return number


class CodedFeatures:
    """Reads the entry's coded features from Observations and the request's feature map.

    An Observation supplies a feature when one of its codings (or a component's) matches the
    feature's system and code and it has a ``valueQuantity`` in the feature's unit.
    Observations marked entered-in-error or cancelled, Observations about another patient and
    conflicting duplicate values are refused; Observations with other codes are ignored, and
    so are features of other models when the inputs are shared by a consult. The
    result is one ``[1, n]`` tensor in feature order, so nothing but these numbers reaches a
    backend.
    """

    def __init__(self) -> None:
        self._indexes: dict[str, tuple[dict[str, FeatureSpec], dict[str, list[FeatureSpec]]]] = {}

    def _index(
        self, entry: ModelEntry
    ) -> tuple[dict[str, FeatureSpec], dict[str, list[FeatureSpec]]]:
        index = self._indexes.get(entry.key)
        if index is None:
            if not entry.fhir.features:
                raise ValueError(f"{entry.key} uses CodedFeatures but lists no features")
            by_code: dict[str, list[FeatureSpec]] = {}
            for spec in entry.fhir.features:
                by_code.setdefault(spec.code, []).append(spec)
            index = ({spec.key: spec for spec in entry.fhir.features}, by_code)
            self._indexes[entry.key] = index
        return index

    def __call__(self, entry: ModelEntry, inputs: ModelInputs) -> Tensors:
        """Build the feature tensor."""
        specs = entry.fhir.features
        by_key, by_code = self._index(entry)
        values: dict[str, float] = {}
        allowed = set(entry.fhir.input_types)
        for resource in inputs.resources:
            resource_type = resource.get_resource_type()
            if resource_type not in allowed:
                if inputs.shared:
                    continue
                raise _invalid(
                    f"{entry.key} takes {', '.join(sorted(allowed)) or 'no'} resources as "
                    f"input, not {resource_type}"
                )
            if isinstance(resource, Observation):
                self._observation(resource, by_key, values, inputs.patient_id)
        for key, raw in (inputs.features or {}).items():
            found = by_key.get(key)
            if found is None:
                candidates = by_code.get(key, [])
                if not candidates and inputs.shared:
                    continue
                if len(candidates) != 1:
                    raise _invalid(
                        f"feature {key!r} is not an input of {entry.key}"
                        if not candidates
                        else f"feature code {key!r} is ambiguous; send it as system|code",
                        expression=[f"features[{key}]"],
                    )
                found = candidates[0]
            _put(values, found, _number(raw, f"feature {key}"))
        missing = [spec.key for spec in specs if spec.key not in values]
        if missing:
            raise _invalid(
                f"{entry.key} lacks {len(missing)} of its {len(specs)} features",
                expression=missing,
            )
        tensor = entry.inputs[0]
        array = np.asarray([[values[spec.key] for spec in specs]], dtype=np.float32)
        return {tensor.name: array}

    def _observation(
        self,
        observation: Observation,
        by_key: Mapping[str, FeatureSpec],
        values: dict[str, float],
        patient_id: str | None,
    ) -> None:
        where = f"Observation/{observation.id}" if observation.id else "an input Observation"
        if observation.status in _REJECTED_STATUSES:
            raise _invalid(f"{where} is {observation.status}")
        subject = observation.subject
        if (
            patient_id is not None
            and subject is not None
            and subject.reference
            and subject.reference != f"Patient/{patient_id}"
        ):
            raise _invalid(f"{where} is about another patient than the request names")
        parts: list[tuple[Any, Any]] = [(observation.code, observation.valueQuantity)]
        parts += [(c.code, c.valueQuantity) for c in observation.component or []]
        for code, quantity in parts:
            for coding in code.coding or []:
                spec = by_key.get(f"{coding.system}|{coding.code}")
                if spec is None:
                    continue
                if quantity is None or quantity.value is None:
                    raise _invalid(f"{where} has no valueQuantity for {spec.code}")
                if spec.unit is not None and spec.unit not in (quantity.code, quantity.unit):
                    raise _invalid(
                        f"{where} gives {spec.code} in {quantity.code or quantity.unit!r}, "
                        f"expected {spec.unit}"
                    )
                _put(values, spec, _number(quantity.value, f"{where} {spec.code}"))


def _put(values: dict[str, float], spec: FeatureSpec, value: float) -> None:
    previous = values.get(spec.key)
    if previous is not None and previous != value:
        raise _invalid(f"feature {spec.code} is given twice with different values")
    values[spec.key] = value


class ConsultFeatures:
    """A generalist's input from a consult: probability, neighbour vote, mean similarity.

    Options (``fhir.options``): ``specialist`` (model name), ``neighbours`` (how many of the
    specialist's nearest cases to use). The vote is the mean label value of those neighbours
    (the share of positives for a classifier).
    """

    def __call__(self, entry: ModelEntry, inputs: ModelInputs) -> Tensors:
        """Build the generalist's tensor."""
        if inputs.consult is None:
            raise _invalid(f"{entry.key} is a generalist and runs only inside a consult")
        options = entry.fhir.options
        finding = inputs.consult.finding(str(options["specialist"]))
        k = int(options.get("neighbours", 5))
        neighbours = finding.neighbours[:k]
        if len(neighbours) < k:
            raise _invalid(f"{entry.key} needs {k} neighbours; ask the consult for top_k >= {k}")
        vote = sum(n.value for n in neighbours) / k
        similarity = sum(n.similarity for n in neighbours) / k
        array = np.asarray([[finding.prediction, vote, similarity]], dtype=np.float32)
        return {entry.inputs[0].name: array}


def _coding(entry: ModelEntry) -> dict[str, str]:
    code = entry.fhir.result_code
    return {k: v for k, v in code.model_dump().items() if v is not None}


def _new_id() -> str:
    return str(uuid.uuid4())


def _method(entry: ModelEntry) -> dict[str, Any]:
    return {"text": f"{entry.key} ({entry.task}, {entry.card.validation_status})"}


def _neighbour_note(neighbours: tuple[Neighbour, ...]) -> list[dict[str, str]]:
    if not neighbours:
        return []
    listed = ", ".join(f"{n.label} ({n.similarity:.3f})" for n in neighbours)
    return [{"text": f"Most similar confirmed reference cases (cosine similarity): {listed}"}]


class RiskAssessmentResult:
    """A RiskAssessment with the predicted probability of ``fhir.result_code``.

    Options: ``high_risk_threshold`` (default 0.5) sets ``qualitativeRisk`` high or low.
    """

    def __call__(self, context: ResultContext) -> list[DomainResource]:
        """Build the RiskAssessment."""
        probability = context.prediction()
        if not 0.0 <= probability <= 1.0:
            raise his_sdk.errors.UpstreamDataError(
                f"{context.entry.key} answered a probability outside [0, 1]"
            )
        threshold = float(context.entry.fhir.options.get("high_risk_threshold", 0.5))
        risk = "high" if probability >= threshold else "low"
        resource = RiskAssessment.model_validate(
            {
                "resourceType": "RiskAssessment",
                "id": _new_id(),
                "identifier": context.identifier(),
                "status": "final",
                "subject": context.subject,
                "occurrenceDateTime": context.issued,
                "performer": {"reference": context.device_reference},
                "method": _method(context.entry),
                "basis": [{"reference": r} for r in context.basis] or None,
                "prediction": [
                    {
                        "outcome": {"coding": [_coding(context.entry)]},
                        "probabilityDecimal": Decimal(f"{probability:.6f}"),
                        "qualitativeRisk": {
                            "coding": [{"system": _RISK_SYSTEM, "code": risk, "display": risk}]
                        },
                    }
                ],
                "note": _neighbour_note(context.neighbours) or None,
            }
        )
        return [resource]


class ObservationResult:
    """An Observation whose ``valueQuantity`` is the prediction.

    Options: ``unit`` (UCUM code, default ``1``), ``decimals`` (rounding, default 3).
    """

    def __call__(self, context: ResultContext) -> list[DomainResource]:
        """Build the Observation."""
        value = context.prediction()
        options = context.entry.fhir.options
        unit = str(options.get("unit", "1"))
        decimals = int(options.get("decimals", 3))
        resource = Observation.model_validate(
            {
                "resourceType": "Observation",
                "id": _new_id(),
                "identifier": context.identifier(),
                "status": "final",
                "code": {
                    "coding": [_coding(context.entry)],
                    "text": context.entry.fhir.result_code.display,
                },
                "subject": context.subject,
                "effectiveDateTime": context.issued,
                "issued": context.issued,
                "device": {"reference": context.device_reference},
                "method": _method(context.entry),
                "derivedFrom": [{"reference": r} for r in context.basis] or None,
                "valueQuantity": {
                    "value": Decimal(f"{value:.{decimals}f}"),
                    "unit": unit,
                    "system": _UCUM,
                    "code": unit,
                },
                "note": _neighbour_note(context.neighbours) or None,
            }
        )
        return [resource]


class DiagnosticReportResult:
    """A DiagnosticReport concluding on ``fhir.result_code`` from a probability.

    Options: ``high_risk_threshold``, ``positive_label``, ``negative_label``. The conclusion
    names the probability and, inside a consult, what the specialists found.
    """

    def __call__(self, context: ResultContext) -> list[DomainResource]:
        """Build the DiagnosticReport."""
        probability = context.prediction()
        options = context.entry.fhir.options
        threshold = float(options.get("high_risk_threshold", 0.5))
        positive = probability >= threshold
        label = str(options.get("positive_label" if positive else "negative_label", ""))
        conclusion = f"{label or ('positive' if positive else 'negative')} (p={probability:.3f})"
        if context.consult is not None:
            conclusion += "; from " + ", ".join(
                f"{f.entry.key} p={f.prediction:.3f}" for f in context.consult.findings
            )
        resource = DiagnosticReport.model_validate(
            {
                "resourceType": "DiagnosticReport",
                "id": _new_id(),
                "identifier": context.identifier(),
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": _REPORT_CODE_SYSTEM,
                            "code": "consult-decision",
                            "display": "Decision of a generalist model on a specialist consult",
                        }
                    ],
                    "text": f"{context.entry.key} decision",
                },
                "subject": context.subject,
                "effectiveDateTime": context.issued,
                "issued": context.issued,
                "conclusion": conclusion,
                "conclusionCode": [{"coding": [_coding(context.entry)]}] if positive else None,
            }
        )
        return [resource]
