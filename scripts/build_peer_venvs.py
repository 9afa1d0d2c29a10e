"""Build (or find cached) the peer venvs of the inference tests: MLServer and KServe.

Run ``python scripts/build_peer_venvs.py`` from the repository root on a machine with network
access; the venvs land in ``.his/peer-venvs`` (or ``$HIS_PEER_VENV_DIR``) and later test runs
use them offline. The test suite builds them itself on first use as well.
"""

from __future__ import annotations

import sys

from his_sdk.testing import (
    KSERVE_REQUIREMENTS,
    MLSERVER_REQUIREMENTS,
    TORCH_CPU_INDEX,
    TORCH_CPU_REQUIREMENT,
    PeerUnavailableError,
    peer_python,
)


def main() -> int:
    failed = 0
    for name, requirements in (
        ("mlserver", MLSERVER_REQUIREMENTS),
        ("kserve", KSERVE_REQUIREMENTS),
    ):
        try:
            python = peer_python(
                requirements, first=(TORCH_CPU_REQUIREMENT,), extra_index_urls=(TORCH_CPU_INDEX,)
            )
        except PeerUnavailableError as exc:
            print(f"{name}: cannot build: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {python}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
