"""Small frozen option objects for the clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["TlsConfig"]


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the channel; every field optional (system roots, no client certificate).

    Attributes:
        root_certificates: PEM roots to trust instead of the system's.
        client_certificate: PEM chain for mutual TLS.
        client_private_key: PEM key for ``client_certificate``.
        server_name_override: Expected server name when it differs from the target host.
    """

    root_certificates: bytes | None = None
    client_certificate: bytes | None = None
    client_private_key: bytes | None = None
    server_name_override: str | None = None

    default: ClassVar[TlsConfig]

    @classmethod
    def from_files(
        cls,
        *,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        server_name_override: str | None = None,
    ) -> TlsConfig:
        """Read PEM files into a config."""
        return cls(
            root_certificates=ca.read_bytes() if ca else None,
            client_certificate=cert.read_bytes() if cert else None,
            client_private_key=key.read_bytes() if key else None,
            server_name_override=server_name_override,
        )


TlsConfig.default = TlsConfig()
