"""Search parameters, prefixes and modifiers: exact result sets against the bundles' truth."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

import his_sdk.errors
import his_sdk.search
from tests.adapters.sql.sql_helpers import (
    Seeded,
    day,
    matches_date,
    model_utc,
    needs_corpus,
    observation_signature,
    point,
    truth_observation_signature,
)

PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
MRN_SYSTEM = "http://hospital.smarthealthit.org"


def date_value(raw: str) -> his_sdk.search.DateValue:
    return his_sdk.search.parse_date_value(raw)


def mrns(resources: list[Any]) -> Counter[str]:
    return Counter(r.identifier[0].value for r in resources)


# Patient -------------------------------------------------------------------------------------


async def test_patient_identifier(seeded: Seeded) -> None:
    everyone = Counter(p["mrn"] for p in seeded.truth.patients)
    for patient in seeded.truth.patients:
        mrn = patient["mrn"]
        assert mrns(await seeded.search("Patient", [("identifier", f"{MRN_SYSTEM}|{mrn}")])) == {
            mrn: 1
        }
        assert mrns(await seeded.search("Patient", [("identifier", mrn)])) == {mrn: 1}
        assert await seeded.search("Patient", [("identifier", f"http://other.example|{mrn}")]) == []
        assert await seeded.search("Patient", [("identifier", f"|{mrn}")]) == []
        assert mrns(
            await seeded.search("Patient", [("identifier:not", mrn)])
        ) == everyone - Counter({mrn: 1})
    assert mrns(await seeded.search("Patient", [("identifier", f"{MRN_SYSTEM}|")])) == everyone


async def test_patient_names(seeded: Seeded) -> None:
    patients = seeded.truth.patients
    for patient in patients:
        family, given = patient["family"], patient["given"][0]
        for param, text in [
            ("name", family[:4].lower()),
            ("name", given[:3].upper()),
            ("family", family[:5]),
            ("given", given.lower()),
        ]:

            def hit(p: dict[str, Any], param: str = param, text: str = text) -> bool:
                parts = {
                    "name": [p["family"], *p["given"]],
                    "family": [p["family"]],
                    "given": p["given"],
                }[param]
                return any(part.lower().startswith(text.lower()) for part in parts)

            expected = Counter(p["mrn"] for p in patients if hit(p))
            assert mrns(await seeded.search("Patient", [(param, text)])) == expected, (param, text)
        assert mrns(await seeded.search("Patient", [("family:exact", family)])) == Counter(
            p["mrn"] for p in patients if p["family"] == family
        )
        assert await seeded.search("Patient", [("family:exact", family.upper())]) == []
        middle = family[1:-1]
        assert mrns(
            await seeded.search("Patient", [("family:contains", middle.upper())])
        ) == Counter(p["mrn"] for p in patients if middle.lower() in p["family"].lower())
    everyone = Counter(p["mrn"] for p in patients)
    assert mrns(await seeded.search("Patient", [("name:missing", "false")])) == everyone
    assert await seeded.search("Patient", [("name:missing", "true")]) == []
    # LIKE wildcards in the search text are literal.
    assert await seeded.search("Patient", [("name", "%")]) == []
    assert await seeded.search("Patient", [("name", "_")]) == []


async def test_patient_birthdate_prefixes(seeded: Seeded) -> None:
    patients = seeded.truth.patients
    for patient in patients:
        birth = patient["birth"]
        for raw in [
            birth.isoformat(),
            birth.isoformat()[:7],
            birth.isoformat()[:4],
            (birth + timedelta(days=1)).isoformat(),
        ]:
            for prefix in PREFIXES:
                value = date_value(prefix + raw)
                expected = Counter(
                    p["mrn"] for p in patients if matches_date(*day(p["birth"]), value)
                )
                found = mrns(await seeded.search("Patient", [("birthdate", prefix + raw)]))
                assert found == expected, prefix + raw


async def test_patient_gender(seeded: Seeded) -> None:
    patients = seeded.truth.patients
    system = "http://hl7.org/fhir/administrative-gender"
    for gender in ("male", "female", "other"):
        expected = Counter(p["mrn"] for p in patients if p["gender"] == gender)
        assert mrns(await seeded.search("Patient", [("gender", gender)])) == expected
        assert mrns(await seeded.search("Patient", [("gender", f"{system}|{gender}")])) == expected
        assert mrns(await seeded.search("Patient", [("gender:not", gender)])) == Counter(
            p["mrn"] for p in patients if p["gender"] != gender
        )
    assert await seeded.search("Patient", [("gender", "http://wrong.example|male")]) == []
    both = Counter(p["mrn"] for p in patients if p["gender"] in ("male", "female"))
    assert mrns(await seeded.search("Patient", [("gender", "male,female")])) == both


async def test_patient_id(seeded: Seeded) -> None:
    ids = sorted(seeded.pid_by_mrn.values())
    found = await seeded.search("Patient", [("_id", ",".join(ids[:2]))])
    assert sorted(r.id for r in found) == ids[:2]
    found = await seeded.search("Patient", [("_id:not", ids[0])])
    assert sorted(r.id for r in found) == ids[1:]
    assert await seeded.search("Patient", [("_id", "not-a-key")]) == []


# Encounter -----------------------------------------------------------------------------------


def encounter_sig(resource: Any, seeded: Seeded) -> tuple[Any, ...]:
    return (
        seeded.mrn_of[resource.subject.reference],
        model_utc(resource.period.start),
        model_utc(resource.period.end),
        resource.class_fhir.code,
    )


def encounter_truth(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["mrn"], record["start"], record["end"], record["class"])


async def check_encounters(seeded: Seeded, params: list[tuple[str, str]], keep: Any) -> None:
    found = await seeded.search("Encounter", params)
    expected = Counter(encounter_truth(e) for e in seeded.truth.encounters if keep(e))
    assert Counter(encounter_sig(r, seeded) for r in found) == expected, params


async def test_encounter_patient_class_type_status(seeded: Seeded) -> None:
    for mrn, pid in seeded.pid_by_mrn.items():
        await check_encounters(
            seeded, [("patient", f"Patient/{pid}")], lambda e, m=mrn: e["mrn"] == m
        )
        await check_encounters(seeded, [("patient", pid)], lambda e, m=mrn: e["mrn"] == m)
    await check_encounters(seeded, [("patient", "Patient/999999")], lambda e: False)
    for klass in ("AMB", "EMER", "IMP"):
        await check_encounters(seeded, [("class", klass)], lambda e, k=klass: e["class"] == k)
        await check_encounters(
            seeded,
            [("class", f"http://terminology.hl7.org/CodeSystem/v3-ActCode|{klass}")],
            lambda e, k=klass: e["class"] == k,
        )
    await check_encounters(seeded, [("class", "amb")], lambda e: False)
    for token in {t for e in seeded.truth.encounters for t in e["types"]}:
        code = token.split("|")[1]
        await check_encounters(seeded, [("type", token)], lambda e, t=token: t in e["types"])
        await check_encounters(
            seeded, [("type", code)], lambda e, c=code: any(t.endswith(f"|{c}") for t in e["types"])
        )
        await check_encounters(
            seeded, [("type:not", token)], lambda e, t=token: t not in e["types"]
        )
    await check_encounters(seeded, [("status", "finished")], lambda e: e["end"] is not None)
    await check_encounters(seeded, [("status", "in-progress")], lambda e: e["end"] is None)
    await check_encounters(seeded, [("status:not", "finished")], lambda e: e["end"] is None)
    await check_encounters(seeded, [("type:missing", "true")], lambda e: not e["types"])


async def test_encounter_date_prefixes(seeded: Seeded) -> None:
    starts = sorted(e["start"] for e in seeded.truth.encounters)
    sample = [starts[0], starts[len(starts) // 2], starts[-1]]
    values = []
    for moment in sample:
        values += [
            moment.date().isoformat(),
            moment.isoformat()[:7],
            moment.isoformat()[:4],
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            (moment + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        ]
    for raw in values:
        for prefix in PREFIXES:
            value = date_value(prefix + raw)

            def keep(e: dict[str, Any], value: Any = value) -> bool:
                end = e["end"] or e["start"]
                return matches_date(e["start"], end + timedelta(microseconds=1), value)

            await check_encounters(seeded, [("date", prefix + raw)], keep)


async def test_encounter_date_range_and_repeats(seeded: Seeded) -> None:
    starts = sorted(e["start"] for e in seeded.truth.encounters)
    low, high = starts[len(starts) // 4], starts[3 * len(starts) // 4]
    params = [("date", f"ge{low.date().isoformat()}"), ("date", f"lt{high.date().isoformat()}")]
    lo, hi = date_value(params[0][1]), date_value(params[1][1])

    def keep(e: dict[str, Any]) -> bool:
        a, b = e["start"], (e["end"] or e["start"]) + timedelta(microseconds=1)
        return matches_date(a, b, lo) and matches_date(a, b, hi)

    await check_encounters(seeded, params, keep)


# Condition -----------------------------------------------------------------------------------


def condition_sig(resource: Any, seeded: Seeded) -> tuple[Any, ...]:
    codes = frozenset(f"{c.system}|{c.code}" for c in resource.code.coding)
    return (
        seeded.mrn_of[resource.subject.reference],
        codes,
        model_utc(resource.onsetDateTime),
        model_utc(resource.abatementDateTime),
    )


async def check_conditions(seeded: Seeded, params: list[tuple[str, str]], keep: Any) -> None:
    found = await seeded.search("Condition", params)
    expected = Counter(
        (c["mrn"], c["codes"], c["onset"], c["abatement"])
        for c in seeded.truth.conditions
        if keep(c)
    )
    assert Counter(condition_sig(r, seeded) for r in found) == expected, params


async def test_condition_code_status_category(seeded: Seeded) -> None:
    for token in {t for c in seeded.truth.conditions for t in c["codes"]}:
        code = token.split("|")[1]
        await check_conditions(seeded, [("code", token)], lambda c, t=token: t in c["codes"])
        await check_conditions(
            seeded, [("code", code)], lambda c, k=code: any(t.endswith(f"|{k}") for t in c["codes"])
        )
        await check_conditions(
            seeded, [("code:not", token)], lambda c, t=token: t not in c["codes"]
        )
    await check_conditions(seeded, [("code", "http://snomed.info/sct|")], lambda c: True)
    await check_conditions(seeded, [("code", "http://loinc.org|")], lambda c: False)
    await check_conditions(seeded, [("code", "|10509002")], lambda c: False)
    await check_conditions(seeded, [("code:missing", "false")], lambda c: True)
    await check_conditions(
        seeded, [("clinical-status", "active")], lambda c: c["abatement"] is None
    )
    await check_conditions(
        seeded, [("clinical-status", "resolved")], lambda c: c["abatement"] is not None
    )
    await check_conditions(
        seeded, [("clinical-status:not", "resolved")], lambda c: c["abatement"] is None
    )
    await check_conditions(seeded, [("category", "problem-list-item")], lambda c: True)
    await check_conditions(seeded, [("category", "encounter-diagnosis")], lambda c: False)
    await check_conditions(seeded, [("category:missing", "true")], lambda c: False)


async def test_condition_onset_and_encounter(seeded: Seeded) -> None:
    onsets = sorted(c["onset"] for c in seeded.truth.conditions)
    for moment in (onsets[0], onsets[-1]):
        for raw in (moment.date().isoformat(), moment.isoformat()[:4]):
            for prefix in PREFIXES:
                value = date_value(prefix + raw)
                await check_conditions(
                    seeded,
                    [("onset-date", prefix + raw)],
                    lambda c, v=value: matches_date(*point(c["onset"]), v),
                )
    encounters = await seeded.search("Encounter", [])
    by_key = {
        (seeded.mrn_of[e.subject.reference], model_utc(e.period.start)): e.id for e in encounters
    }
    for condition in seeded.truth.conditions[:5]:
        enc_id = by_key[(condition["mrn"], condition["enc_start"])]
        await check_conditions(
            seeded,
            [("encounter", f"Encounter/{enc_id}")],
            lambda c, k=(condition["mrn"], condition["enc_start"]): (c["mrn"], c["enc_start"]) == k,
        )


# Observation ---------------------------------------------------------------------------------


async def check_observations(seeded: Seeded, params: list[tuple[str, str]], keep: Any) -> None:
    found = await seeded.search("Observation", params, count=2000)
    expected = Counter(truth_observation_signature(o) for o in seeded.truth.observations if keep(o))
    assert Counter(observation_signature(r, seeded.mrn_of) for r in found) == expected, params


async def test_observation_code_category_status(seeded: Seeded) -> None:
    codes = {o["code"] for o in seeded.truth.observations}
    assert {"8867-4", "85354-9", "29463-7"} <= codes
    for code in codes:
        await check_observations(seeded, [("code", code)], lambda o, c=code: o["code"] == c)
        await check_observations(
            seeded, [("code", f"http://loinc.org|{code}")], lambda o, c=code: o["code"] == c
        )
        await check_observations(seeded, [("code:not", code)], lambda o, c=code: o["code"] != c)
    await check_observations(seeded, [("code", "http://snomed.info/sct|8867-4")], lambda o: False)
    await check_observations(seeded, [("code", "8480-6")], lambda o: False)  # only a component
    await check_observations(
        seeded, [("code", "8867-4,9279-1")], lambda o: o["code"] in ("8867-4", "9279-1")
    )
    for category in ("vital-signs", "laboratory"):
        await check_observations(
            seeded, [("category", category)], lambda o, c=category: o["category"] == c
        )
        await check_observations(
            seeded,
            [
                (
                    "category",
                    f"http://terminology.hl7.org/CodeSystem/observation-category|{category}",
                )
            ],
            lambda o, c=category: o["category"] == c,
        )
    await check_observations(seeded, [("category", "survey")], lambda o: False)
    await check_observations(seeded, [("status", "final")], lambda o: True)
    await check_observations(seeded, [("status:not", "final")], lambda o: False)
    await check_observations(seeded, [("code:missing", "true")], lambda o: False)
    await check_observations(
        seeded,
        [("category", "vital-signs"), ("code", "29463-7,8302-2")],
        lambda o: o["code"] in ("29463-7", "8302-2"),
    )


async def test_observation_date_patient_encounter(seeded: Seeded) -> None:
    moments = sorted(o["effective"] for o in seeded.truth.observations)
    for moment in (moments[0], moments[len(moments) // 2], moments[-1]):
        for raw in (moment.date().isoformat(), moment.strftime("%Y-%m-%dT%H:%M:%SZ")):
            for prefix in PREFIXES:
                value = date_value(prefix + raw)
                await check_observations(
                    seeded,
                    [("date", prefix + raw)],
                    lambda o, v=value: matches_date(*point(o["effective"]), v),
                )
    for mrn, pid in seeded.pid_by_mrn.items():
        await check_observations(
            seeded, [("patient", f"Patient/{pid}")], lambda o, m=mrn: o["mrn"] == m
        )
        await check_observations(
            seeded,
            [("patient", pid), ("code", "8867-4")],
            lambda o, m=mrn: o["mrn"] == m and o["code"] == "8867-4",
        )
    encounters = await seeded.search("Encounter", [])
    by_key = {
        (seeded.mrn_of[e.subject.reference], model_utc(e.period.start)): e.id for e in encounters
    }
    keys = sorted({(o["mrn"], o["enc_start"]) for o in seeded.truth.observations})
    for key in keys[:: max(1, len(keys) // 6)]:
        await check_observations(
            seeded,
            [("encounter", f"Encounter/{by_key[key]}")],
            lambda o, k=key: (o["mrn"], o["enc_start"]) == k,
        )
    await check_observations(
        seeded, [("encounter:missing", "true")], lambda o: o["enc_start"] is None
    )


# MedicationRequest ---------------------------------------------------------------------------


def medication_sig(resource: Any, seeded: Seeded) -> tuple[Any, ...]:
    return (
        seeded.mrn_of[resource.subject.reference],
        resource.medicationCodeableConcept.coding[0].code,
        model_utc(resource.authoredOn),
        resource.status,
    )


async def check_medications(seeded: Seeded, params: list[tuple[str, str]], keep: Any) -> None:
    found = await seeded.search("MedicationRequest", params)
    expected = Counter(
        (m["mrn"], m["code"], m["authored"], m["status"])
        for m in seeded.truth.medications
        if keep(m)
    )
    assert Counter(medication_sig(r, seeded) for r in found) == expected, params


async def test_medication_request(seeded: Seeded) -> None:
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    for code in {m["code"] for m in seeded.truth.medications}:
        await check_medications(seeded, [("code", code)], lambda m, c=code: m["code"] == c)
        await check_medications(
            seeded, [("code", f"{rxnorm}|{code}")], lambda m, c=code: m["code"] == c
        )
    for status in ("active", "stopped", "completed"):
        await check_medications(seeded, [("status", status)], lambda m, s=status: m["status"] == s)
    await check_medications(seeded, [("intent", "order")], lambda m: m["intent"] == "order")
    await check_medications(seeded, [("intent", "plan")], lambda m: m["intent"] == "plan")
    moments = sorted(m["authored"] for m in seeded.truth.medications)
    for raw in (moments[0].date().isoformat(), moments[-1].isoformat()[:7]):
        for prefix in PREFIXES:
            value = date_value(prefix + raw)
            await check_medications(
                seeded,
                [("authoredon", prefix + raw)],
                lambda m, v=value: matches_date(*point(m["authored"]), v),
            )
    for mrn, pid in seeded.pid_by_mrn.items():
        await check_medications(seeded, [("patient", pid)], lambda m, x=mrn: m["mrn"] == x)
    encounters = await seeded.search("Encounter", [])
    by_key = {
        (seeded.mrn_of[e.subject.reference], model_utc(e.period.start)): e.id for e in encounters
    }
    for medication in seeded.truth.medications[:4]:
        key = (medication["mrn"], medication["enc_start"])
        await check_medications(
            seeded,
            [("encounter", f"Encounter/{by_key[key]}")],
            lambda m, k=key: (m["mrn"], m["enc_start"]) == k,
        )


async def test_observation_ids_across_sources(seeded: Seeded) -> None:
    everything = await seeded.search("Observation", [], count=5000)
    picked = [everything[0].id, everything[len(everything) // 2].id, everything[-1].id]
    found = await seeded.search("Observation", [("_id", ",".join(picked))])
    assert sorted(r.id for r in found) == sorted(picked)
    rest = await seeded.search("Observation", [("_id:not", ",".join(picked))], count=5000)
    assert {r.id for r in rest} == {r.id for r in everything} - set(picked)
    unknown = await seeded.search("Observation", [("_id", "vs-1-zz,lab-x,1")])
    assert unknown == []


# AllergyIntolerance --------------------------------------------------------------------------


@needs_corpus
async def test_allergy_intolerance(seeded: Seeded) -> None:
    allergies = seeded.truth.allergies
    assert allergies

    async def check(params: list[tuple[str, str]], keep: Any) -> None:
        found = await seeded.search("AllergyIntolerance", params)
        got = Counter(
            (
                seeded.mrn_of[r.patient.reference],
                frozenset(f"{c.system}|{c.code}" for c in r.code.coding),
            )
            for r in found
        )
        assert got == Counter((a["mrn"], a["codes"]) for a in allergies if keep(a)), params

    for token in {t for a in allergies for t in a["codes"]}:
        await check([("code", token)], lambda a, t=token: t in a["codes"])
        await check([("code", token.split("|")[1])], lambda a, t=token: t in a["codes"])
    for category in ("food", "medication", "environment"):
        await check([("category", category)], lambda a, c=category: a["category"] == c)
    await check([("clinical-status", "active")], lambda a: a["active"])
    await check([("clinical-status", "resolved")], lambda a: not a["active"])
    for mrn, pid in seeded.pid_by_mrn.items():
        await check([("patient", f"Patient/{pid}")], lambda a, m=mrn: a["mrn"] == m)


# Every type ----------------------------------------------------------------------------------


async def test_every_resource_validates(seeded: Seeded) -> None:
    for resource_type in seeded.adapter.capabilities().types:
        resources = await seeded.search(resource_type, [], count=5000)
        model = get_fhir_model_class(resource_type)
        for resource in resources:
            assert type(resource) is model
            again = model.model_validate_json(resource.model_dump_json())
            assert again.id == resource.id
    counts = {t: len(await seeded.search(t, [], count=5000)) for t in ("Encounter", "Condition")}
    assert counts == {
        "Encounter": len(seeded.truth.encounters),
        "Condition": len(seeded.truth.conditions),
    }
    assert len(await seeded.search("Observation", [], count=5000)) == len(seeded.truth.observations)


async def test_unsupported_modifier_and_type(seeded: Seeded) -> None:
    criterion = his_sdk.search.Criterion(
        "gender",
        his_sdk.search.ParamType.TOKEN,
        "exact",
        (his_sdk.search.TokenValue(None, "male"),),
    )
    with pytest.raises(his_sdk.errors.UnsupportedParameterError):
        await seeded.adapter.search(his_sdk.search.SearchQuery("Patient", (criterion,)))
    with pytest.raises(his_sdk.errors.UnsupportedError):
        await seeded.adapter.search(his_sdk.search.SearchQuery("Immunization"))
