#!/usr/bin/env bash
# Install what the reviewer console's browser tests need: Debian chromium and Playwright for Python.
# Idempotent: each step is skipped when its result is already present. Playwright's own browser
# downloads are never used; the tests launch /usr/bin/chromium.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
fi

if ! "$PYTHON" -c "import playwright" >/dev/null 2>&1; then
    # Keep Playwright from fetching its bundled browsers during any later install step.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$PYTHON" -m pip install "playwright>=1.49,<2"
fi

/usr/bin/chromium --version
"$PYTHON" -c "import playwright; print('playwright', __import__('importlib.metadata').metadata.version('playwright'))"
