"""AuditSettings: defaults that run the demo, strict keys, durations from config text."""

from __future__ import annotations

import datetime
import socket

import pydantic
import pytest

from his_sdk.audit import AuditSettings, KafkaSettings


def test_defaults():
    settings = AuditSettings()
    assert settings.enabled
    assert settings.kafka.topic == "his.audit.v1"
    assert settings.kafka.bootstrap_servers == []
    assert settings.retention == datetime.timedelta(days=7)
    assert settings.read_mode == "buffered"
    assert settings.instance_id == socket.gethostname()
    assert settings.effective_chain_id == settings.instance_id
    assert AuditSettings(chain_id="c1").effective_chain_id == "c1"


def test_from_config_mapping():
    settings = AuditSettings.model_validate(
        {
            "outbox_url": "postgresql+psycopg://gw@db/his",
            "retention": "P14D",
            "read_mode": "committed",
            "kafka": {
                "bootstrap_servers": ["k1:9092", "k2:9092"],
                "replication_factor": 3,
                "topic_config": {"min.insync.replicas": "2"},
            },
        }
    )
    assert settings.retention == datetime.timedelta(days=14)
    assert settings.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert AuditSettings(retention=3600).retention == datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    "data",
    [
        {"kafka": {"bootstrap_server": ["k1:9092"]}},
        {"retension": "P1D"},
        {"read_mode": "sometimes"},
    ],
)
def test_mistakes_are_refused(data):
    with pytest.raises(pydantic.ValidationError):
        AuditSettings.model_validate(data)


def test_every_field_is_documented():
    for model in (AuditSettings, KafkaSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"
