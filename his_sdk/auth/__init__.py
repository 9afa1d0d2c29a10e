"""Authentication: verified OAuth2 bearer tokens become :class:`Principal` objects.

:class:`TokenVerifier` checks a compact JWS access token against the issuer's JWKS and the
``AuthSettings``; :func:`parse_scopes` reads SMART App Launch scopes; :class:`DevIssuer` is a
local identity provider for the demo and tests.
"""

from ._dev_issuer import DevIssuer
from ._jwks import SUPPORTED_ALGORITHMS, FileKeySource, KeyRing, KeySource, UrlKeySource
from ._principal import Actor, Principal
from ._scopes import INTERACTION_LETTERS, SmartScope, parse_scopes
from ._verifier import TokenVerifier

__all__ = [
    "INTERACTION_LETTERS",
    "SUPPORTED_ALGORITHMS",
    "Actor",
    "DevIssuer",
    "FileKeySource",
    "KeyRing",
    "KeySource",
    "Principal",
    "SmartScope",
    "TokenVerifier",
    "UrlKeySource",
    "parse_scopes",
]
