import pytest

from his_sdk.auth import SmartScope, parse_scopes
from his_sdk.errors import AuthenticationError


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "letters", "filters"),
    [
        # SMART v2
        ("patient/Observation.rs", "patient", "Observation", "rs", ()),
        ("user/Patient.r", "user", "Patient", "r", ()),
        ("system/*.cruds", "system", "*", "cruds", ()),
        ("user/MedicationRequest.cu", "user", "MedicationRequest", "cu", ()),
        ("patient/Condition.d", "patient", "Condition", "d", ()),
        ("user/Encounter.s", "user", "Encounter", "s", ()),
        # SMART v1, mapped to v2 letters
        ("patient/Observation.read", "patient", "Observation", "rs", ()),
        ("user/*.write", "user", "*", "cud", ()),
        ("system/Patient.*", "system", "Patient", "cruds", ()),
        ("patient/*.*", "patient", "*", "cruds", ()),
        # granular
        (
            "patient/Observation.rs?category=laboratory",
            "patient",
            "Observation",
            "rs",
            (("category", "laboratory"),),
        ),
        (
            "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
            "observation-category|vital-signs",
            "user",
            "Observation",
            "rs",
            (
                (
                    "category",
                    "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
                ),
            ),
        ),
        (
            "patient/Condition.rs?category=problem-list-item&clinical-status=active",
            "patient",
            "Condition",
            "rs",
            (("category", "problem-list-item"), ("clinical-status", "active")),
        ),
        (
            "user/Observation.s?code:in=http%3A%2F%2Fvs.example%7Cabc",
            "user",
            "Observation",
            "s",
            (("code:in", "http://vs.example|abc"),),
        ),
        ("user/Observation.rs?code:in=x", "user", "Observation", "rs", (("code:in", "x"),)),
    ],
)
def test_resource_scopes_parse(text, context, resource_type, letters, filters):
    scopes, other = parse_scopes(text)
    assert other == ()
    assert scopes == (
        SmartScope(
            context=context,
            resource_type=resource_type,
            interactions=frozenset(letters),
            filters=filters,
            raw=text,
        ),
    )


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation.",  # no permission
        "patient/Observation",  # no permission part at all
        "patient/Observation.sr",  # letters out of order
        "patient/Observation.rr",  # repeated letter
        "patient/Observation.x",  # unknown letter
        "patient/Observation.RS",  # upper case
        "patient/observation.rs",  # type must start upper case
        "patient/Obs-ervation.rs",
        "patient/.rs",
        "user/*.readwrite",
        "system/Patient.read?identifier=x",  # granular filters need v2 letters
        "patient/Observation.rs?",  # empty query
        "patient/Observation.rs?category",  # no value
        "patient/Observation.rs?category=",  # empty value
        "patient/Observation.rs?=x",  # no name
        "patient/Observation.rs?category=a&&code=b",
        "patient/Observation.rs?code%3Ain=x",  # encoded parameter name
        "user/Patient.rs/extra",
        "system/" + "A" * 2000 + ".rs",
    ],
)
def test_malformed_resource_scopes_refuse_the_token(text):
    with pytest.raises(AuthenticationError) as info:
        parse_scopes(f"openid {text} fhirUser")
    assert "malformed SMART scope" in info.value.message
    assert text[:20] in info.value.message


def test_other_scopes_are_kept_in_order_and_duplicates_dropped():
    scopes, other = parse_scopes(
        "openid fhirUser launch launch/patient offline_access patient/Observation.rs "
        "patient/Observation.rs online_access https://hospital.example/custom"
    )
    assert [s.raw for s in scopes] == ["patient/Observation.rs"]
    assert other == (
        "openid",
        "fhirUser",
        "launch",
        "launch/patient",
        "offline_access",
        "online_access",
        "https://hospital.example/custom",
    )


def test_empty_scope_string():
    assert parse_scopes("") == ((), ())
    assert parse_scopes("   ") == ((), ())


@pytest.mark.parametrize(
    ("scope", "resource_type", "interaction", "expected"),
    [
        ("patient/Observation.rs", "Observation", "r", True),
        ("patient/Observation.rs", "Observation", "search", True),
        ("patient/Observation.rs", "Observation", "read", True),
        ("patient/Observation.rs", "Observation", "c", False),
        ("patient/Observation.rs", "Condition", "r", False),
        ("user/*.r", "Condition", "read", True),
        ("user/*.r", "Condition", "search", False),
        ("system/*.cud", "Task", "create", True),
        ("system/*.cud", "Task", "delete", True),
        ("system/*.cud", "Task", "read", False),
        ("user/Patient.write", "Patient", "update", True),
    ],
)
def test_permits(scope, resource_type, interaction, expected):
    (parsed,), _ = parse_scopes(scope)
    assert parsed.permits(resource_type, interaction) is expected


def test_permits_refuses_unknown_interactions():
    (parsed,), _ = parse_scopes("user/*.cruds")
    with pytest.raises(ValueError, match="unknown interaction"):
        parsed.permits("Patient", "patch")
