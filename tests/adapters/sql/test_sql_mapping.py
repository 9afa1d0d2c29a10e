"""The mapping file: validation messages naming the bad key, and a custom mapping end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

import adapters.sql
import his_sdk.errors
import his_sdk.search

OPENEMR = Path(adapters.sql.__file__).parent / "mappings" / "openemr.yaml"


def openemr() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(OPENEMR.read_text())
    return data


def load(tmp_path: Path, data: dict[str, Any] | str) -> adapters.sql.SqlAdapter:
    path = tmp_path / "mapping.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return adapters.sql.SqlAdapter(f"sqlite:///{tmp_path / 'db.sqlite'}", mapping=path)


def problems(tmp_path: Path, data: dict[str, Any] | str) -> str:
    with pytest.raises(adapters.sql.MappingError) as caught:
        load(tmp_path, data)
    return str(caught.value)


def source(data: dict[str, Any], resource_type: str, index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = data["resources"][resource_type]["sources"][index]
    return found


def test_shipped_mapping_by_name_and_path(tmp_path: Path) -> None:
    by_name = adapters.sql.SqlAdapter.from_settings({"url": "sqlite://", "mapping": "openemr"})
    by_path = adapters.sql.SqlAdapter.from_settings({"url": "sqlite://", "mapping": str(OPENEMR)})
    assert by_name.capabilities() == by_path.capabilities()
    assert set(by_name.capabilities().types) == {
        "Patient",
        "Practitioner",
        "Encounter",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "Observation",
    }
    assert load(tmp_path, openemr()).capabilities() == by_name.capabilities()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: source(d, "Patient").update(tabel="x"),
            "resources.Patient.sources[0].tabel: Extra inputs are not permitted",
        ),
        (
            lambda d: source(d, "Patient").pop("table"),
            "resources.Patient.sources[0].table: Field required",
        ),
        (
            lambda d: source(d, "Patient")["search"]["birthdate"].update(kind="token"),
            "resources.Patient.sources[0].search.birthdate.kind: 'token' cannot serve a date",
        ),
        (
            lambda d: source(d, "Patient")["search"].update(shoe={"kind": "none"}),
            "resources.Patient.sources[0].search.shoe: parameter 'shoe' is not declared",
        ),
        (
            lambda d: source(d, "Patient")["search"]["gender"].update(kind="fuzzy"),
            "resources.Patient.sources[0].search.gender: Input tag 'fuzzy'",
        ),
        (
            lambda d: source(d, "Observation").update(id="{procedure_result_id}"),
            "resources.Observation.sources: id templates '{procedure_result_id}' (lab) and "
            "'vs-{id}-bp' (vitals-blood-pressure) can produce the same id",
        ),
        (
            lambda d: source(d, "Observation", 2).update(name="lab"),
            "resources.Observation.sources[2].name: duplicate source name 'lab'",
        ),
        (
            lambda d: source(d, "Patient").update(id="pat-{pid}-{pubpid}"),
            "resources.Patient.sources[0].id: the id template needs exactly one placeholder",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(gender="{sex|map:sexes}"),
            "resources.Patient.sources[0].template: unknown value map 'sexes'",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(birthDate="{DOB|dte}"),
            "template.birthDate: unknown conversion 'dte'",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(birthDate="{DOB"),
            "template.birthDate: unbalanced '{'",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(id="{pid}"),
            "'id' is set by the adapter; remove it from the template",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(active={"$iff": {"present": "pid"}}),
            "template.active: unknown directive $iff",
        ),
        (
            lambda d: source(d, "Patient")["template"].update(
                active={"$if": {"presnt": "pid"}, "then": True}
            ),
            "template.active.$if: a condition is exactly one of",
        ),
        (
            lambda d: source(d, "Patient").update(deleted={"equals": {"activity": False}}),
            "quote the value",
        ),
        (
            lambda d: d["resources"].update(Widget=d["resources"]["Patient"]),
            "resources: 'Widget' is not a FHIR R4B resource type",
        ),
        (
            lambda d: d["resources"]["Patient"]["params"].update(_id={"type": "token"}),
            "resources.Patient.params._id: '_id' is implicit",
        ),
        (
            lambda d: d["resources"]["Encounter"]["params"]["patient"].pop("target"),
            "resources.Encounter.params.patient: 'target' is required for reference parameters",
        ),
        (lambda d: d["resources"].pop("Patient"), "patient_facts: needs a 'Patient' resource"),
        (
            lambda d: d["patient_facts"]["care_team"][0].update(reference="Practitioner/{id}"),
            "patient_facts.care_team[0].reference: must look like 'Practitioner/{value}'",
        ),
        (
            lambda d: source(d, "Observation")["search"]["patient"].update(column="orders.pid"),
            "resources.Observation.sources[0].search.patient: 'orders.pid' names table 'orders'",
        ),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone: unknown time zone 'Mars/Olympus'"),
        (lambda d: d.update(version=2), "version: Input should be 1"),
    ],
)
def test_mapping_errors_name_the_bad_key(tmp_path: Path, change: Any, expected: str) -> None:
    data = openemr()
    change(data)
    message = problems(tmp_path, data)
    assert expected in message
    assert str(tmp_path / "mapping.yaml") in message


def test_unquoted_yaml_boolean_gets_a_hint(tmp_path: Path) -> None:
    text = OPENEMR.read_text().replace('allow_health_info_ex: "NO"', "allow_health_info_ex: NO")
    assert "quote the value" in problems(tmp_path, text)


def test_mapping_files_that_are_not_mappings(tmp_path: Path) -> None:
    assert "not valid YAML (line 1)" in problems(tmp_path, "resources: [unclosed")
    assert "the top level must be a mapping" in problems(tmp_path, "- a\n- b\n")
    with pytest.raises(adapters.sql.MappingError, match="mapping file not found"):
        adapters.sql.SqlAdapter("sqlite://", mapping=tmp_path / "nope.yaml")
    with pytest.raises(adapters.sql.MappingError, match=r"unknown mapping 'epic'.*openemr"):
        adapters.sql.SqlAdapter("sqlite://", mapping="epic")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"mapping": "openemr"}, "sql adapter settings: url: Field required"),
        (
            {"url": "sqlite://", "urll": "x"},
            "sql adapter settings: urll: Extra inputs are not permitted",
        ),
        ({"url": "sqlite://", "pool_size": 0}, "sql adapter settings: pool_size:"),
        ({"url": "not a url"}, "url: not a SQLAlchemy database URL"),
        ({"url": "nosuchdb+nodriver://x/y"}, "no installed driver for 'nosuchdb+nodriver'"),
    ],
)
def test_settings_errors(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(adapters.sql.MappingError) as caught:
        adapters.sql.SqlAdapter.from_settings(settings)
    assert expected in str(caught.value)


def test_settings_errors_do_not_echo_values() -> None:
    with pytest.raises(adapters.sql.MappingError) as caught:
        adapters.sql.SqlAdapter.from_settings({"url": "sqlite://", "echo": "s3cret-password"})
    assert "s3cret" not in str(caught.value)


# A custom mapping over a table unlike OpenEMR's ---------------------------------------------

CUSTOM = """
version: 1
timezone: Europe/Berlin
code_systems: {SCT: http://snomed.info/sct}
value_maps:
  kinds: {F: female, M: male}
resources:
  Patient:
    params:
      name: {type: string}
      gender: {type: token}
      birthdate: {type: date}
      general-practitioner: {type: reference, target: Practitioner}
    sources:
      - name: people
        table: people
        id: "p.{code}"
        joins:
          - {table: clinics, match: {clinic: clinic_id}, outer: true}
        filter: {not: {equals: {kind: X}}}
        search:
          name: {kind: string, columns: [surname, clinics.clinic_name]}
          gender: {kind: token, column: kind, map: kinds}
          birthdate: {kind: none}
        template:
          name: [{family: "{surname}", text: "{surname} of {clinics.clinic_name}"}]
          gender: "{kind|map:kinds}"
          extension:
            - url: http://example.org/seen
              valueDateTime: "{seen|datetime}"
          multipleBirthInteger: "{twins|int}"
          managingOrganization: {display: "{clinics.clinic_name}"}
          contact:
            - $if: {present: clinics.clinic_name}
              then: {name: {text: "{{clinic}} {clinics.clinic_name}"}}
"""


@pytest.fixture
def custom(tmp_path: Path) -> adapters.sql.SqlAdapter:
    try:
        ZoneInfo("Europe/Berlin")
    except Exception:
        pytest.skip("no IANA time zone data on this machine")
    url = f"sqlite:///{tmp_path / 'custom.db'}"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    people = sa.Table(
        "people",
        meta,
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("surname", sa.String(50)),
        sa.Column("kind", sa.String(1)),
        sa.Column("seen", sa.DateTime),
        sa.Column("twins", sa.String(5)),
        sa.Column("clinic", sa.Integer),
    )
    clinics = sa.Table(
        "clinics",
        meta,
        sa.Column("clinic_id", sa.Integer, primary_key=True),
        sa.Column("clinic_name", sa.String(50)),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(clinics.insert(), [{"clinic_id": 1, "clinic_name": "Northside"}])
        conn.execute(
            people.insert(),
            [
                {
                    "code": "a1",
                    "surname": "Ames",
                    "kind": "F",
                    "seen": datetime(2024, 6, 1, 10, 0),
                    "twins": "2",
                    "clinic": 1,
                },
                {
                    "code": "b2",
                    "surname": "Baker",
                    "kind": "M",
                    "seen": None,
                    "twins": "",
                    "clinic": None,
                },
                {
                    "code": "c3",
                    "surname": "Cole",
                    "kind": "X",
                    "seen": None,
                    "twins": None,
                    "clinic": None,
                },
                {
                    "code": "d4",
                    "surname": "Dunn",
                    "kind": "Q",
                    "seen": None,
                    "twins": "1.5",
                    "clinic": None,
                },
            ],
        )
    engine.dispose()
    path = tmp_path / "custom.yaml"
    path.write_text(CUSTOM)
    return adapters.sql.SqlAdapter(url, mapping=path)


async def search(adapter: adapters.sql.SqlAdapter, params: list[tuple[str, str]]) -> list[str]:
    definitions = adapter.capabilities().types["Patient"].search_params
    criteria = his_sdk.search.parse_criteria("Patient", params, definitions)
    page = await adapter.search(his_sdk.search.SearchQuery("Patient", criteria, count=10))
    return [r.id for r in page.resources]


async def test_custom_mapping_end_to_end(custom: adapters.sql.SqlAdapter) -> None:
    try:
        ames = await custom.read("Patient", "p.a1")
        assert ames.name[0].text == "Ames of Northside"
        assert ames.gender == "female"
        assert ames.multipleBirthInteger == 2
        # The database holds Berlin wall-clock time; FHIR gets the offset.
        assert ames.extension[0].valueDateTime == datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
        assert ames.contact[0].name.text == "{clinic} Northside"
        baker = await custom.read("Patient", "p.b2")
        assert baker.multipleBirthInteger is None and baker.extension is None
        assert baker.managingOrganization is None and baker.contact is None
        with pytest.raises(his_sdk.errors.NotFoundError):
            await custom.read("Patient", "p.c3")  # filtered out by the source filter
        with pytest.raises(his_sdk.errors.NotFoundError):
            await custom.read("Patient", "a1")
        with pytest.raises(his_sdk.errors.UpstreamDataError, match=r"Patient/p\.d4"):
            await custom.read("Patient", "p.d4")  # kind Q is not in the value map
        assert await search(custom, [("name", "north")]) == ["p.a1"]
        assert await search(custom, [("name", "bak")]) == ["p.b2"]
        assert await search(custom, [("gender", "male")]) == ["p.b2"]
        assert await search(custom, [("gender:missing", "false"), ("_id", "p.a1,p.b2")]) == [
            "p.a1",
            "p.b2",
        ]
        assert await search(custom, [("birthdate", "2000")]) == []
        assert await search(custom, [("birthdate:missing", "true"), ("name", "a")]) == ["p.a1"]
        with pytest.raises(his_sdk.errors.UnsupportedParameterError, match="general-practitioner"):
            await search(custom, [("general-practitioner", "Practitioner/1")])
    finally:
        await custom.close()


async def test_datetime_search_in_database_zone(tmp_path: Path) -> None:
    try:
        ZoneInfo("Europe/Berlin")
    except Exception:
        pytest.skip("no IANA time zone data on this machine")
    data = openemr()
    data["timezone"] = "Europe/Berlin"
    url = f"sqlite:///{tmp_path / 'zoned.db'}"
    adapters.sql.create_schema(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO form_encounter (id, encounter, pid, date, class_code, activity)"
                " VALUES (1, 5, 1, '2024-06-01 01:30:00.000000', 'AMB', 1)"
            )
        )
    engine.dispose()
    path = tmp_path / "zoned.yaml"
    path.write_text(yaml.safe_dump(data))
    adapter = adapters.sql.SqlAdapter(url, mapping=path)
    definitions = adapter.capabilities().types["Encounter"].search_params
    try:
        for raw, hits in [
            ("2024-05-31", 1),
            ("2024-06-01", 0),
            ("2024-05-31T23:30:00Z", 1),
            ("lt2024-05-31T23:30:00Z", 0),
            ("ge2024-05-31T23:30:00Z", 1),
        ]:
            criteria = his_sdk.search.parse_criteria("Encounter", [("date", raw)], definitions)
            page = await adapter.search(his_sdk.search.SearchQuery("Encounter", criteria))
            assert len(page.resources) == hits, raw
        encounter = await adapter.read("Encounter", "5")
        assert encounter.period.start == datetime(2024, 5, 31, 23, 30, tzinfo=UTC)
    finally:
        await adapter.close()
