"""Audit fixtures: a session tansu broker, SQLite files and throwaway PostgreSQL databases.

Set ``HIS_TEST_KAFKA_BOOTSTRAP=host:port`` to run against an existing Kafka-protocol broker
instead of starting tansu (tests that kill the broker always start their own).
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from his_sdk.audit import AuditSettings, KafkaSettings, make_engine

PG_ADMIN_URL = os.environ.get(
    "HIS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def topic() -> str:
    """A fresh topic per test, so tests sharing the broker never see each other's events."""
    return f"his.audit.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=[kafka_bootstrap],
        topic=topic,
        partitions=3,
        delivery_timeout_seconds=5.0,
        request_timeout_seconds=2.0,
    )


def _postgres_available() -> bool:
    engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    if not _postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"his_audit_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            sa.engine.make_url(postgres_admin_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/outbox.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def audit_settings(db_url: str, kafka_settings: KafkaSettings) -> AuditSettings:
    return AuditSettings(
        outbox_url=db_url,
        instance_id="gw-test-1",
        site="test-hospital",
        server_address="gw.test.local",
        kafka=kafka_settings,
        publish_interval_seconds=0.05,
        publish_retry_max_seconds=0.5,
        write_interval_seconds=0.01,
    )


@pytest.fixture
def kafka_outage(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Collect the sockets kafka-python leaks while a broker is down (see audit_helpers).

    Captured log records keep their arguments (connections, exceptions with tracebacks) and
    through them the sockets, so they are dropped before collecting; the captured log text
    in the report stays.
    """
    caplog.set_level(logging.CRITICAL, logger="kafka")
    yield
    for when in ("setup", "call"):
        caplog.get_records(when).clear()
    gc.collect()
