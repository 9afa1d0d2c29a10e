"""The SMART configuration document and the OAuth URIs added to the CapabilityStatement."""

from __future__ import annotations

from typing import Any

from his_sdk.config import AuthSettings, RestSettings

__all__ = ["OAUTH_URIS_EXTENSION", "oauth_uris_extension", "smart_configuration"]

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
"""CapabilityStatement extension that SMART clients read the token endpoint from."""

_SIGNING_ALGORITHMS = ["RS384", "ES384"]


def smart_configuration(rest: RestSettings, auth: AuthSettings) -> dict[str, Any] | None:
    """``/.well-known/smart-configuration``, or None when no token endpoint is configured."""
    if not rest.token_endpoint:
        return None
    grants = ["client_credentials"]
    document: dict[str, Any] = {
        "issuer": auth.issuer,
        "token_endpoint": rest.token_endpoint,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": _SIGNING_ALGORITHMS,
    }
    if auth.jwks_url:
        document["jwks_uri"] = auth.jwks_url
    if rest.authorization_endpoint:
        document["authorization_endpoint"] = rest.authorization_endpoint
        document["response_types_supported"] = ["code"]
        document["code_challenge_methods_supported"] = ["S256"]
        grants.insert(0, "authorization_code")
    document["grant_types_supported"] = grants
    document["scopes_supported"] = [
        "system/*.rs",
        "user/*.rs",
        "patient/*.rs",
        "launch/patient",
        "fhirUser",
    ]
    document["capabilities"] = list(rest.smart_capabilities)
    return document


def oauth_uris_extension(rest: RestSettings) -> dict[str, Any] | None:
    """The ``oauth-uris`` extension for ``rest[0].security``, or None without a token endpoint."""
    if not rest.token_endpoint:
        return None
    uris = [{"url": "token", "valueUri": rest.token_endpoint}]
    if rest.authorization_endpoint:
        uris.append({"url": "authorize", "valueUri": rest.authorization_endpoint})
    return {"url": OAUTH_URIS_EXTENSION, "extension": uris}
