import pydantic
import pytest

from his_sdk.config import GatewaySettings, load_settings


def test_yaml_then_environment_overrides(tmp_path, monkeypatch):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "server:\n  port: 6000\nauth:\n  audience: from-yaml\npaging:\n  max_count: 50\n"
    )
    monkeypatch.setenv("HIS_AUTH__AUDIENCE", "from-env")
    settings = load_settings(path)
    assert settings.server.port == 6000
    assert settings.auth.audience == "from-env"
    assert settings.paging.max_count == 50


def test_empty_config_runs_the_embedded_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    settings = load_settings(path)
    assert settings.adapters[0].implementation == "adapters.sql:SqlAdapter"
    assert settings.state.url.startswith("sqlite:///")


def test_typos_and_bad_values_are_errors_naming_the_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("server:\n  prot: 1\n")
    with pytest.raises(pydantic.ValidationError, match="prot"):
        load_settings(path)
    with pytest.raises(pydantic.ValidationError, match="unique"):
        GatewaySettings(adapters=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml")
