import asyncio

from click.testing import CliRunner

from his_sdk.auth import TokenVerifier
from his_sdk.cli import main
from his_sdk.config import load_settings


def _config(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"auth:\n  issuer: http://127.0.0.1/cli-test\n  audience: cli-aud\n"
        f"  jwks_file: {tmp_path}/issuer/jwks.json\n"
    )
    return path


def test_dev_init_and_token_mint_a_token_the_gateway_accepts(tmp_path):
    config = _config(tmp_path)
    runner = CliRunner()
    first = runner.invoke(main, ["dev", "init", "--config", str(config)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["dev", "init", "--config", str(config)])
    assert "already initialised" in again.output
    minted = runner.invoke(
        main,
        [
            "dev",
            "token",
            "--config",
            str(config),
            "--client-id",
            "agent-7",
            "--scope",
            "patient/Observation.rs",
            "--patient",
            "42",
            "--act",
            "dr.who",
            "--act-fhir-user",
            "Practitioner/9",
            "--role",
            "clinician",
        ],
    )
    assert minted.exit_code == 0, minted.output
    settings = load_settings(config)
    principal = asyncio.run(TokenVerifier(settings.auth).verify(minted.output.strip()))
    assert principal.client_id == "agent-7" and principal.patient == "42"
    assert principal.acting_user == "Practitioner/9" and "clinician" in principal.roles


def test_dev_token_without_init_explains_what_to_do(tmp_path):
    result = CliRunner().invoke(main, ["dev", "token", "--config", str(_config(tmp_path))])
    assert result.exit_code != 0 and "his dev init" in result.output


def test_bad_config_is_reported_not_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: not-a-number\n")
    result = CliRunner().invoke(main, ["dev", "init", "--config", str(path)])
    assert result.exit_code != 0 and "port" in result.output
