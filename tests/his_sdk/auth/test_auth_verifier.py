"""The token security matrix against a JWKS file written by the dev issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jwe, jws
from joserfc.jwk import JWKRegistry, Key, RSAKey

from his_sdk.auth import DevIssuer, TokenVerifier
from his_sdk.errors import AuthenticationError, UpstreamUnavailableError

AUDIENCE = "his-gateway"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key(issuer: DevIssuer, kid: str | None = None) -> Key:
    data = json.loads((issuer.directory / "signing-keys.json").read_text())
    wanted = kid or data["active_kid"]
    return next(JWKRegistry.import_key(k) for k in data["keys"] if k["kid"] == wanted)


def claims_for(issuer: DevIssuer, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "sub": "agent-1",
        "aud": AUDIENCE,
        "scope": "user/Observation.rs",
        "iat": now,
        "exp": now + 600,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return claims


def sign(header: dict, claims: dict, key: Key, alg: str) -> str:
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=[alg])


def sign_rs256(header: dict, claims: dict, private_key: rsa.RSAPrivateKey, *, pss=False) -> str:
    # Signed without a JOSE library, so that what a library would refuse can be forged.
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    pad = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        if pss
        else padding.PKCS1v15()
    )
    signature = private_key.sign(signing_input.encode(), pad, hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def mint(issuer: DevIssuer, **kwargs) -> str:
    kwargs.setdefault("client_id", "agent-1")
    kwargs.setdefault("scopes", "user/Observation.rs")
    return issuer.mint(audience=AUDIENCE, **kwargs)


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(token)
    message = info.value.message
    assert token not in message if token else True
    assert len(message) < 120
    return message


@pytest.fixture
def verifier(shared_issuer, file_settings) -> TokenVerifier:
    return TokenVerifier(file_settings(shared_issuer))


async def test_a_valid_token_becomes_a_principal(shared_issuer, verifier):
    principal = await verifier.verify(mint(shared_issuer, roles=["clinician"]))
    assert principal.client_id == "agent-1"
    assert principal.issuer == shared_issuer.issuer
    assert principal.roles == frozenset({"clinician"})
    assert [s.raw for s in principal.scopes] == ["user/Observation.rs"]


def now() -> int:
    return int(time.time())


# (name, extra claims for the dev issuer, expected reason)
CLAIM_ATTACKS = [
    ("expired", {"iat": now() - 7200, "exp": now() - 3600}, "token expired"),
    ("expired beyond leeway", {"exp": now() - 31}, "token expired"),
    ("not yet valid", {"nbf": now() + 600}, "token not yet valid"),
    ("issued in the future", {"iat": now() + 600, "exp": now() + 1200}, "issued in the future"),
    ("wrong issuer", {"iss": "https://evil.example/idp"}, "wrong issuer"),
    ("issuer missing", {"iss": None}, "wrong issuer"),
    ("wrong audience", {"aud": "another-api"}, "wrong audience"),
    ("audience list without ours", {"aud": ["a", "b"]}, "wrong audience"),
    ("audience missing", {"aud": None}, "wrong audience"),
    ("missing jti", {"jti": None}, "token has no jti claim"),
    ("empty jti", {"jti": ""}, "token has no jti claim"),
    ("missing exp", {"exp": None}, "token has no exp claim"),
    ("exp not a number", {"exp": "tomorrow"}, "malformed exp claim"),
    ("exp is a boolean", {"exp": True}, "malformed exp claim"),
    ("missing sub", {"sub": None}, "token has no sub claim"),
    ("lifetime too long", {"exp": now() + 2 * 86400}, "token lifetime too long"),
    (
        "lifetime too long without iat",
        {"iat": None, "exp": now() + 2 * 86400},
        "token lifetime too long",
    ),
    ("garbage scope", {"scope": "patient/Observation.sr"}, "malformed SMART scope"),
    ("scope of the wrong type", {"scope": 42}, "malformed scope claim"),
    ("roles not strings", {"roles": [1, 2]}, "malformed roles claim"),
    ("act without sub", {"act": {"fhirUser": "Practitioner/1"}}, "malformed act claim"),
    ("patient not a string", {"patient": 7}, "malformed patient claim"),
]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [pytest.param(extra, reason, id=name) for name, extra, reason in CLAIM_ATTACKS],
)
async def test_claim_attacks_are_refused(shared_issuer, verifier, extra, reason):
    assert reason in await refused(verifier, mint(shared_issuer, extra_claims=extra))


async def test_leeway_tolerates_small_clock_skew(shared_issuer, verifier):
    skewed = mint(shared_issuer, extra_claims={"exp": now() - 10, "nbf": now() + 10})
    assert (await verifier.verify(skewed)).token_id


async def test_audience_list_containing_ours_is_accepted(shared_issuer, verifier):
    token = mint(shared_issuer, extra_claims={"aud": ["other", AUDIENCE]})
    assert (await verifier.verify(token)).client_id == "agent-1"


async def test_alg_none_is_refused(shared_issuer, verifier):
    header = {"alg": "none", "kid": shared_issuer.active_kid, "typ": "JWT"}
    token = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_for(shared_issuer)).encode())}."
    )
    assert await refused(verifier, token) == "algorithm not allowed"
    for spelling in ("None", "NONE"):
        header["alg"] = spelling
        forged = f"{b64(json.dumps(header).encode())}.{token.split('.')[1]}."
        assert await refused(verifier, forged) == "algorithm not allowed"


async def test_hs256_signed_with_the_public_key_is_refused(shared_issuer, file_settings):
    # The classic key-confusion attack: the RSA public key (public knowledge) used as an
    # HMAC secret. It must fail even when HS256 is (wrongly) configured.
    public = signing_key(shared_issuer).public_key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": shared_issuer.active_kid, "typ": "JWT"}
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_for(shared_issuer)).encode())}"
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"
    for algorithms in (["RS256"], ["RS256", "HS256"]):
        verifier = TokenVerifier(file_settings(shared_issuer, algorithms=algorithms))
        assert await refused(verifier, token) == "algorithm not allowed"


async def test_alg_outside_the_allow_list_is_refused(shared_issuer, file_settings):
    key = signing_key(shared_issuer).raw_value
    header = {"alg": "PS256", "kid": shared_issuer.active_kid}
    token = sign_rs256(header, claims_for(shared_issuer), key, pss=True)
    verifier = TokenVerifier(file_settings(shared_issuer, algorithms=["RS256"]))
    assert await refused(verifier, token) == "algorithm not allowed"


async def test_key_of_the_wrong_type_for_the_alg_is_refused(shared_issuer, tmp_path, file_settings):
    # An ES256 token naming the RSA key's kid: the key must match the algorithm's type.
    ec_issuer = DevIssuer.init(tmp_path / "ec", issuer=shared_issuer.issuer, key_type="ES256")
    header = {"alg": "ES256", "kid": shared_issuer.active_kid}
    token = sign(header, claims_for(shared_issuer), signing_key(ec_issuer), "ES256")
    verifier = TokenVerifier(file_settings(shared_issuer))
    assert "does not match" in await refused(verifier, token)


async def test_an_rs256_key_declared_for_another_alg_is_refused(shared_issuer, file_settings):
    # The JWKS says the key is for RS256; a PS256 signature by it does not count.
    key = signing_key(shared_issuer).raw_value
    header = {"alg": "PS256", "kid": shared_issuer.active_kid}
    token = sign_rs256(header, claims_for(shared_issuer), key, pss=True)
    verifier = TokenVerifier(file_settings(shared_issuer, algorithms=["RS256", "PS256"]))
    assert "does not match" in await refused(verifier, token)


async def test_unknown_kid_is_refused(shared_issuer, verifier):
    header = {"alg": "RS256", "kid": "not-a-published-key"}
    token = sign(header, claims_for(shared_issuer), signing_key(shared_issuer), "RS256")
    assert await refused(verifier, token) == "unknown signing key"


async def test_embedded_keys_in_the_header_are_ignored(shared_issuer, verifier):
    attacker = RSAKey.generate_key(2048, private=True, auto_kid=True)
    header = {
        "alg": "RS256",
        "kid": attacker.kid,
        "jwk": attacker.as_dict(private=False),
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/cert.pem",
    }
    token = sign_rs256(header, claims_for(shared_issuer), attacker.raw_value)
    assert await refused(verifier, token) == "unknown signing key"


async def test_token_signed_by_another_key_with_our_kid_is_refused(shared_issuer, verifier):
    attacker = RSAKey.generate_key(2048, private=True)
    header = {"alg": "RS256", "kid": shared_issuer.active_kid}
    token = sign(header, claims_for(shared_issuer), attacker, "RS256")
    assert await refused(verifier, token) == "bad signature"


async def test_tampered_payload_is_refused(shared_issuer, verifier):
    header, _, signature = mint(shared_issuer).split(".")
    forged_claims = claims_for(shared_issuer, scope="user/*.cruds", roles=["clinician"])
    token = f"{header}.{b64(json.dumps(forged_claims).encode())}.{signature}"
    assert await refused(verifier, token) == "bad signature"


async def test_tampered_signature_is_refused(shared_issuer, verifier):
    header, payload, signature = mint(shared_issuer).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    assert await refused(verifier, f"{header}.{payload}.{b64(bytes(raw))}") == "bad signature"
    assert await refused(verifier, f"{header}.{payload}.") == "token is not signed"


async def test_critical_headers_are_refused(shared_issuer, verifier):
    header = {"alg": "RS256", "kid": shared_issuer.active_kid, "crit": ["exp"], "exp": 1}
    token = sign_rs256(header, claims_for(shared_issuer), signing_key(shared_issuer).raw_value)
    assert await refused(verifier, token) == "unsupported critical header"


async def test_jwe_is_refused(shared_issuer, verifier):
    published = shared_issuer.jwks()["keys"][0]
    public = JWKRegistry.import_key({k: v for k, v in published.items() if k not in ("use", "alg")})
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": shared_issuer.active_kid},
        json.dumps(claims_for(shared_issuer)),
        public,
        algorithms=["RSA-OAEP-256", "A256GCM"],
    )
    assert token.count(".") == 4
    assert await refused(verifier, token) == "encrypted tokens (JWE) are not accepted"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty token"),
        ("garbage", "not a compact JWS"),
        ("a.b", "not a compact JWS"),
        ("a.b.c.d", "not a compact JWS"),
        ("....", "encrypted tokens (JWE) are not accepted"),
        ("!!!.@@@.###", "malformed token header"),
        (f"{b64(b'[1, 2]')}.e30.c2ln", "malformed token header"),
        (f"{b64(b'{not json')}.e30.c2ln", "malformed token header"),
        ("é.é.é", "malformed token"),
        ("a" * 20000, "malformed token"),
    ],
)
async def test_garbage_is_refused(verifier, token, reason):
    assert reason in await refused(verifier, token)


async def test_non_json_payload_is_refused(shared_issuer, verifier):
    header = {"alg": "RS256", "kid": shared_issuer.active_kid}
    token = jws.serialize_compact(header, b"not json", signing_key(shared_issuer), ["RS256"])
    assert await refused(verifier, token) == "malformed token payload"


async def test_token_without_kid_needs_a_single_key(issuer, file_settings):
    header = {"alg": "RS256"}
    token = sign(header, claims_for(issuer), signing_key(issuer), "RS256")
    verifier = TokenVerifier(file_settings(issuer))
    assert (await verifier.verify(token)).subject == "agent-1"
    issuer.rotate()
    assert await refused(verifier, token) == "token has no key id (kid)"


async def test_weak_rsa_keys_are_never_used(tmp_path, file_settings, shared_issuer):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    numbers = weak.public_key().public_numbers()
    weak_jwk = {
        "kty": "RSA",
        "kid": "weak",
        "n": b64(numbers.n.to_bytes(128, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    jwks = tmp_path / "weak.json"
    jwks.write_text(json.dumps({"keys": [weak_jwk, *shared_issuer.jwks()["keys"]]}))
    token = sign_rs256({"alg": "RS256", "kid": "weak"}, claims_for(shared_issuer), weak)
    settings = file_settings(shared_issuer).model_copy(update={"jwks_file": jwks})
    assert await refused(TokenVerifier(settings), token) == "unknown signing key"


async def test_rotation_accepts_new_kid_and_refuses_retired_kid(issuer, file_settings):
    verifier = TokenVerifier(file_settings(issuer))
    old_token = mint(issuer)
    old_kid = issuer.active_kid
    assert (await verifier.verify(old_token)).token_id

    new_kid = issuer.rotate()
    new_token = mint(issuer)
    assert (
        json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "==")).get("kid") == new_kid
    )
    assert (await verifier.verify(new_token)).token_id
    # The old public key stays published after a rotation: issued tokens keep working.
    assert (await verifier.verify(old_token)).token_id

    issuer.retire(old_kid)
    # The cached principal of the old token does not outlive its key.
    assert await refused(verifier, old_token) == "unknown signing key"
    assert (await verifier.verify(new_token)).token_id


async def test_verified_principals_are_cached_until_expiry(issuer, file_settings, clock):
    verifier = TokenVerifier(file_settings(issuer, leeway_seconds=0), clock=clock)
    token = mint(issuer, ttl_seconds=60)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    clock.advance(61)
    assert await refused(verifier, token) == "token expired"
    assert await refused(verifier, token) == "token expired"


async def test_cache_is_bounded_and_evicted_tokens_verify_again(issuer, file_settings):
    verifier = TokenVerifier(file_settings(issuer), cache_size=2)
    tokens = [mint(issuer) for _ in range(3)]
    principals = [await verifier.verify(t) for t in tokens]
    assert await verifier.verify(tokens[2]) is principals[2]
    again = await verifier.verify(tokens[0])
    assert again == principals[0]
    assert again is not principals[0]


async def test_a_damaged_jwks_file_keeps_the_last_good_keys(issuer, file_settings):
    verifier = TokenVerifier(file_settings(issuer))
    token = mint(issuer)
    assert (await verifier.verify(token)).token_id
    issuer.jwks_path.write_text("{not json")
    assert (await verifier.verify(mint(issuer))).token_id
    issuer.jwks_path.unlink()
    assert (await verifier.verify(mint(issuer))).token_id


async def test_missing_jwks_file_is_unavailable_not_unauthenticated(
    tmp_path, file_settings, shared_issuer
):
    settings = file_settings(shared_issuer).model_copy(update={"jwks_file": tmp_path / "none.json"})
    with pytest.raises(UpstreamUnavailableError):
        await TokenVerifier(settings).verify(mint(shared_issuer))


async def test_es256_issuer_round_trip(tmp_path, file_settings):
    issuer = DevIssuer.init(tmp_path / "ec", issuer="https://idp.example.test/ec", key_type="ES256")
    settings = file_settings(issuer).model_copy(update={"issuer": issuer.issuer})
    principal = await TokenVerifier(settings).verify(mint(issuer))
    assert principal.issuer == issuer.issuer


@pytest.mark.parametrize(
    ("algorithms", "problem"),
    [
        (["HS256"], "no usable token algorithm"),
        (["none"], "no usable token algorithm"),
        (["RS256", "XY999"], "unsupported token algorithms"),
    ],
)
def test_bad_algorithm_settings_are_refused_at_startup(
    shared_issuer, file_settings, algorithms, problem
):
    with pytest.raises(ValueError, match=problem):
        TokenVerifier(file_settings(shared_issuer, algorithms=algorithms))


def test_settings_without_a_key_source_are_refused(shared_issuer, file_settings):
    settings = file_settings(shared_issuer).model_copy(update={"jwks_file": None})
    with pytest.raises(ValueError, match="jwks_url or jwks_file"):
        TokenVerifier(settings)
