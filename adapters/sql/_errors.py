"""Driver exceptions translated into the gateway's error tree at the adapter's edge.

SQLAlchemy exception text carries the SQL statement and its parameters, which may hold patient
data, so the translated errors name only the failing action and the exception class; the
original stays chained for the server log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc

import his_sdk.errors

__all__ = ["translate_driver_errors"]

_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)


def _kind(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)
    return type(original if original is not None else exc).__name__


@contextmanager
def translate_driver_errors(action: str) -> Iterator[None]:
    """Raise ``his_sdk.errors`` types for driver failures inside the block.

    Connection failures become :class:`his_sdk.errors.UpstreamUnavailableError`; any other
    database error becomes :class:`his_sdk.errors.UpstreamDataError`.
    """
    try:
        yield
    except _UNAVAILABLE as exc:
        raise his_sdk.errors.UpstreamUnavailableError(
            "the legacy database is unavailable", diagnostics=f"{action}: {_kind(exc)}"
        ) from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise his_sdk.errors.UpstreamDataError(
            "the legacy database rejected a query", diagnostics=f"{action}: {_kind(exc)}"
        ) from exc
