"""The reviewer console: a server-rendered web page for deciding approval requests.

:func:`create_app` builds it for the gateway (``console.implementation``); it calls the
:class:`approval_service.ApprovalService` in process with the logged-in reviewer as the
principal, so the console enforces the same rules as the gRPC API. Reviewers log in through
the hospital's OIDC issuer (:class:`OidcLogin`) or, for demos, a dev login.
"""

from ._app import ReviewerConsole, create_app
from ._oidc import LoginTransaction, OidcLogin
from ._session import Reviewer, Session, SessionCodec

__all__ = [
    "LoginTransaction",
    "OidcLogin",
    "Reviewer",
    "ReviewerConsole",
    "Session",
    "SessionCodec",
    "create_app",
]
