"""Consult the shipped specialists about one breast aspirate and one diabetes baseline visit.

Two ways to run it:

* ``python examples/inference_consult.py`` runs the bridge in this process on the local
  torch backend (no server needed), as the embedded gateway does;
* ``python examples/inference_consult.py --target 127.0.0.1:50051 --token "$(his dev token
  --role clinician --act-fhir-user Practitioner/1 --scope 'user/RiskAssessment.c
  user/Observation.c user/DiagnosticReport.c')"`` calls a running gateway's
  ``InferenceService`` (the patient must have that practitioner on its care team).

The inputs are FHIR Observations coded as the catalog says (a held-out case of each data set);
the answer is the consult text an LLM reads, then the FHIR bundle's contents.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json

import grpc
from fhir.resources.R4B.observation import Observation
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

import inference_bridge
from his_sdk._generated.his.v1 import fhir_pb2, inference_pb2, inference_pb2_grpc
from his_sdk.auth import Actor, Principal, parse_scopes
from his_sdk.config import PolicySettings
from his_sdk.policy import PolicyEngine
from his_sdk.server import CallContext

SPECIALISTS = ("breast-fna-malignancy", "diabetes-progression")


def observations(patient: str) -> list[dict]:
    """One Observation per catalog feature, from a held-out case of each data set."""
    catalog = inference_bridge.Catalog.load()
    # The training script's split (seed 7): the first held-out case, not in any case library.
    breast_data = load_breast_cancer()
    _, breast_test = train_test_split(
        breast_data.data, test_size=0.2, random_state=7, stratify=breast_data.target
    )
    _, diabetes_test = train_test_split(
        load_diabetes(scaled=False).data, test_size=0.2, random_state=7
    )
    breast, diabetes = breast_test[0], diabetes_test[0]
    found = []
    for name, row in zip(SPECIALISTS, (breast, diabetes), strict=True):
        for i, (spec, value) in enumerate(zip(catalog.get(name).fhir.features, row, strict=True)):
            quantity: dict = {"value": round(float(value), 6)}
            if spec.unit:
                quantity |= {
                    "unit": spec.unit,
                    "system": "http://unitsofmeasure.org",
                    "code": spec.unit,
                }
            found.append(
                {
                    "resourceType": "Observation",
                    "id": f"{name}-{i}",
                    "status": "final",
                    "code": {
                        "coding": [{"system": spec.system, "code": spec.code}],
                        "text": spec.display,
                    },
                    "subject": {"reference": f"Patient/{patient}"},
                    "valueQuantity": quantity,
                }
            )
    return found


async def in_process(patient: str) -> tuple[str, list[tuple[str, str]]]:
    scopes, other = parse_scopes("user/RiskAssessment.c user/Observation.c user/DiagnosticReport.c")
    principal = Principal(
        client_id="example-agent",
        subject="example-agent",
        on_behalf_of=Actor("dr-1", "Practitioner/1"),
        fhir_user=None,
        scopes=scopes,
        other_scopes=other,
        roles=frozenset({"clinician"}),
        patient=None,
        token_id="example",
        issuer="http://127.0.0.1/his-dev-issuer",
        expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5),
    )

    class CareTeam:
        async def patient_facts(self, patient_id: str):
            from his_sdk.adapter import PatientFacts

            return PatientFacts(patient_id, care_team=frozenset({"Practitioner/1"}))

    settings = inference_bridge.InferenceSettings(consult={"generalist": "breast-fna-generalist"})
    async with inference_bridge.InferenceBridge(
        settings, policy=PolicyEngine.from_settings(PolicySettings()), facts=CareTeam()
    ) as bridge:
        inputs = tuple(Observation.model_validate(o) for o in observations(patient))
        result = await bridge.consult(
            CallContext(principal=principal, request_id="example-1"),
            inference_bridge.ConsultRequest(
                SPECIALISTS, patient_id=patient, resources=inputs, generalist=True
            ),
        )
    return result.text, [
        (e.resource.get_resource_type(), e.resource.id) for e in result.bundle.entry
    ]


async def over_grpc(target: str, token: str, patient: str) -> tuple[str, list[tuple[str, str]]]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        response = await stub.Consult(
            inference_pb2.ConsultRequest(
                specialists=SPECIALISTS,
                patient_id=patient,
                inputs=[
                    fhir_pb2.Resource(
                        resource_type="Observation", id=o["id"], json=json.dumps(o).encode()
                    )
                    for o in observations(patient)
                ],
                use_generalist=True,
            ),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
    bundle = json.loads(response.bundle.json)
    return response.text, [
        (e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="gateway host:port; in process when omitted")
    parser.add_argument("--token", help="bearer token for --target")
    parser.add_argument("--patient", default="1")
    args = parser.parse_args()
    if args.target:
        if not args.token:
            parser.error("--target needs --token")
        text, entries = asyncio.run(over_grpc(args.target, args.token, args.patient))
    else:
        text, entries = asyncio.run(in_process(args.patient))
    print(text)
    print()
    for resource_type, resource_id in entries:
        print(f"  {resource_type}/{resource_id}")


if __name__ == "__main__":
    main()
