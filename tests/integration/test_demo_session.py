"""The demo path as a newcomer runs it: `his` CLI processes and the example agent session."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from his_sdk.cli import main
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_seed_serve_and_agent_session(tmp_path):
    port = _free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{port: {port}}}\n"
        f"auth: {{jwks_file: '{tmp_path}/issuer/jwks.json'}}\n"
        "adapters:\n  - name: openemr\n    implementation: adapters.sql:SqlAdapter\n"
        f"    settings: {{url: 'sqlite:///{tmp_path}/legacy.db', mapping: openemr}}\n"
        f"state: {{url: 'sqlite:///{tmp_path}/state.db'}}\n"
    )
    runner = CliRunner()
    seeded = runner.invoke(
        main, ["legacy", "seed", "--url", f"sqlite:///{tmp_path}/legacy.db", str(SMALL_BUNDLE)]
    )
    assert seeded.exit_code == 0, seeded.output
    assert "patient_data" in seeded.output and "skipped" in seeded.output
    assert runner.invoke(main, ["dev", "init", "--config", str(config)]).exit_code == 0

    server = subprocess.Popen(
        [sys.executable, "-m", "his_sdk.cli", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = runner.invoke(main, ["health", "--target", f"127.0.0.1:{port}", "--wait", "30"])
        assert ready.exit_code == 0, ready.output
        session = subprocess.run(
            [
                sys.executable,
                "examples/agent_session.py",
                "--config",
                str(config),
                "--target",
                f"127.0.0.1:{port}",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=15)
    assert session.returncode == 0, session.stderr
    out = session.stdout
    assert "read Patient/" in out and "laboratory results:" in out
    assert out.count("PERMISSION_DENIED") == 2 and "INVALID_ARGUMENT" in out
    assert server.returncode == 0, log
    assert "shutting down" in log
