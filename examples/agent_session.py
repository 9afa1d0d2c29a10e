"""An agent session against the demo gateway: discover, search, read, and get refused.

Run by ``make demo``; on its own: ``python examples/agent_session.py --target 127.0.0.1:50051``
after ``his serve --config examples/gateway.yaml``. Tokens come from the local dev issuer, as
an identity provider would hand them to the agent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import his_sdk
from his_sdk.auth import DevIssuer
from his_sdk.config import load_settings


def show(title: str, value: object = "") -> None:
    print(f"\n--- {title}")
    if value != "":
        print(value)


def describe_observation(obs: Observation) -> str:
    code = obs.code.coding[0].display if obs.code.coding else obs.code.text
    when = obs.effectiveDateTime or ""
    if obs.valueQuantity is not None:
        value = f"{obs.valueQuantity.value} {obs.valueQuantity.unit or ''}".strip()
    elif obs.component:
        value = ", ".join(
            f"{c.valueQuantity.value}" for c in obs.component if c.valueQuantity is not None
        )
    else:
        value = "(no value)"
    return f"  {when}  {code}: {value}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("examples/gateway.yaml"))
    parser.add_argument("--target", default="127.0.0.1:50051")
    args = parser.parse_args()
    settings = load_settings(args.config)
    issuer = DevIssuer.load(Path(settings.auth.jwks_file).parent)
    audience = settings.auth.audience

    # A backend service finds a patient and the clinician treating them (as a launch would).
    system_token = issuer.mint(
        client_id="triage-service",
        audience=audience,
        scopes="system/Patient.rs system/Encounter.rs system/Observation.rs",
        roles=("system",),
    )
    with his_sdk.HisClient.connect(args.target, token=system_token) as service:
        statement = service.capabilities()
        served = [r.type for r in statement.rest[0].resource]
        show("gateway serves", ", ".join(served))
        # Prefer a patient with laboratory results, so the session has something to page.
        labs_anywhere = service.search(Observation, {"category": "laboratory"}, count=1)
        if labs_anywhere.resources:
            patient_id = labs_anywhere.resources[0].subject.reference.split("/")[1]
        else:
            patient_id = service.search(Patient, count=1).resources[0].id
        patient = service.read(Patient, patient_id)
        encounters = service.search(Encounter, {"patient": patient.id}, count=50)
        clinician = next(
            p.individual.reference
            for e in encounters
            for p in (e.participant or [])
            if p.individual is not None and p.individual.reference
        )

    # The agent acts for that clinician, with user-level read/search scopes.
    agent_token = issuer.mint(
        client_id="ward-assistant-agent",
        audience=audience,
        scopes="user/Patient.rs user/Observation.rs user/Condition.rs user/Encounter.rs",
        roles=("clinician",),
        act_subject="clinician-demo",
        act_fhir_user=clinician,
    )
    with his_sdk.HisClient.connect(args.target, token=agent_token) as agent:
        chart = agent.read(Patient, patient.id)
        name = chart.name[0]
        show(
            f"read Patient/{chart.id} (acting for {clinician})",
            f"  {' '.join(name.given or [])} {name.family}, born {chart.birthDate}, {chart.gender}",
        )

        labs = agent.search(
            Observation, {"patient": patient.id, "category": "laboratory"}, count=5, total=True
        )
        show(f"laboratory results: {labs.total} in all, first page of {len(labs)}")
        for obs in labs:
            print(describe_observation(obs))
        second = agent.next_page(labs)
        if second is not None:
            show(f"next page via cursor: {len(second)} more")

        vitals = agent.search(
            Observation,
            {"patient": patient.id, "category": "vital-signs", "code": "http://loinc.org|8867-4"},
            count=3,
            elements=["code", "effective", "value"],
        )
        show("heart rate, only the elements the agent needs (_elements)")
        for obs in vitals:
            print(describe_observation(obs))
        if vitals.resources:
            full = agent.read(Observation, vitals.resources[0].id)
            trimmed = len(vitals.resources[0].model_dump_json(exclude_none=True))
            print(
                f"  ({trimmed} bytes per resource instead of "
                f"{len(full.model_dump_json(exclude_none=True))})"
            )

        show("denied: MedicationRequest is outside the agent's scopes")
        try:
            agent.search("MedicationRequest", {"patient": patient.id})
        except his_sdk.PermissionDeniedError as exc:
            print(f"  PERMISSION_DENIED: {exc.message}")

        show("refused: a search parameter the gateway does not support")
        try:
            agent.search(Observation, {"patient": patient.id, "value-quantity": "gt100"})
        except his_sdk.UnsupportedParameterError as exc:
            print(f"  INVALID_ARGUMENT: {exc.message}")

    # A patient-launched app is confined to its own patient.
    other = issuer.mint(
        client_id="patient-app",
        audience=audience,
        scopes="patient/Observation.rs",
        patient="no-such-launch-patient",
    )
    with his_sdk.HisClient.connect(args.target, token=other) as app:
        show("denied: a patient-context token reading another patient's data")
        try:
            app.search(Observation, {"patient": patient.id})
        except his_sdk.PermissionDeniedError as exc:
            print(f"  PERMISSION_DENIED: {exc.message}")

    summary = {"patient": patient.id, "clinician": clinician, "labs_total": labs.total}
    show("session summary", json.dumps(summary))


if __name__ == "__main__":
    main()
