"""``his serve`` starts the REST facade beside gRPC from the config file; exports are pinned."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import adapters.fhir
import his_sdk.rest
from his_sdk.config import load_settings

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rest_settings_come_from_yaml_and_environment(tmp_path, monkeypatch):
    config = tmp_path / "gateway.yaml"
    config.write_text("rest: {enabled: true, port: 9090, base_url: 'https://x.example/fhir'}\n")
    monkeypatch.setenv("HIS_REST__ACCESS_LOG", "true")
    settings = load_settings(config)
    assert settings.rest.enabled and settings.rest.port == 9090
    assert settings.rest.base_url == "https://x.example/fhir" and settings.rest.access_log


def test_his_serve_starts_the_facade_beside_grpc(issuer, tmp_path):
    grpc_port, rest_port = _free_port(), _free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{port: {grpc_port}}}\n"
        f"rest: {{enabled: true, port: {rest_port}}}\n"
        f"auth: {{issuer: '{issuer.issuer}', jwks_file: '{issuer.jwks_path}'}}\n"
        "adapters:\n  - name: memory\n    implementation: tests.fixtures:MemoryAdapter\n"
        f"    settings: {{file: '{tmp_path / 'resources.json'}'}}\n"
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\nlog_level: WARNING\n"
    )
    (tmp_path / "resources.json").write_text('[{"resourceType": "Patient", "id": "p1"}]')
    process = subprocess.Popen(
        [sys.executable, "-m", "his_sdk.cli", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{rest_port}/metadata", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["rest"][0]["resource"][0]["type"] == "Patient"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"FHIR REST facade on http://127.0.0.1:{rest_port}" in output


def test_exports_are_pinned():
    assert set(his_sdk.rest.__all__) == {
        "CURSOR_PARAMETER",
        "FHIR_JSON",
        "IDEMPOTENCY_HEADER",
        "JUSTIFICATION_HEADER",
        "FhirRestApp",
        "RestServer",
        "http_status_of",
    }
    assert set(adapters.fhir.__all__) == {
        "WRITE_TAG_SYSTEM",
        "BackendAuthSettings",
        "BackendServicesAuth",
        "BreakerState",
        "CircuitBreaker",
        "FhirAdapter",
        "FhirSettings",
        "SettingsError",
    }
    for module in (his_sdk.rest, adapters.fhir):
        for name in module.__all__:
            assert getattr(module, name) is not None
