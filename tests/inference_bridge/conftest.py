"""Fixtures of the inference bridge tests: principals, samples, peers and a backend twin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

import inference_bridge
from his_sdk.config import PolicySettings
from his_sdk.policy import PolicyEngine
from his_sdk.server import CallContext
from his_sdk.testing import (
    KSERVE_REQUIREMENTS,
    MLSERVER_REQUIREMENTS,
    TORCH_CPU_INDEX,
    TORCH_CPU_REQUIREMENT,
    MLServerPeer,
    ModelServerPeer,
    PeerUnavailableError,
    peer_python,
)
from inference_bridge._peers import kserve_arguments, write_mlserver_repository
from tests.inference_bridge.ib_helpers import (
    BREAST,
    CLINICIAN_SCOPES,
    DIABETES,
    GENERALIST,
    SLOW,
    SLOW_SECONDS,
    AuditLog,
    Facts,
    Samples,
    make_call,
    make_principal,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kserve_peer: starts MLServer or KServe ModelServer from a cached peer venv"
    )


# Peer venvs are built (once, then cached) here, after collection and before any test runs,
# so the build is outside every test's timeout. A venv that cannot be built skips its tests.
_PEERS = {
    "mlserver": ("mlservers", MLSERVER_REQUIREMENTS),
    "kserve": ("modelserver", KSERVE_REQUIREMENTS),
}
_PEER_PYTHONS: dict[str, Path | str] = {}


def pytest_collection_modifyitems(config, items):
    for kind, (fixture, requirements) in _PEERS.items():
        if kind in _PEER_PYTHONS or not any(fixture in i.fixturenames for i in items):
            continue
        try:
            _PEER_PYTHONS[kind] = peer_python(
                requirements, first=(TORCH_CPU_REQUIREMENT,), extra_index_urls=(TORCH_CPU_INDEX,)
            )
        except PeerUnavailableError as exc:
            _PEER_PYTHONS[kind] = f"the {kind} venv cannot be built (offline, no cache?): {exc}"


def _python(kind: str) -> Path:
    found = _PEER_PYTHONS.get(kind)
    if found is None:
        pytest.fail(f"the {kind} venv was not prepared at collection")
    if isinstance(found, str):
        pytest.skip(found)
    return found


# Principals and calls ---------------------------------------------------------------------


@pytest.fixture
def clinician_call() -> CallContext:
    return make_call(make_principal(CLINICIAN_SCOPES))


@pytest.fixture(scope="session")
def policy() -> PolicyEngine:
    return PolicyEngine.from_settings(PolicySettings())


@pytest.fixture
def facts() -> Facts:
    return Facts()


@pytest.fixture
def audit() -> AuditLog:
    return AuditLog()


# Samples ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def samples() -> Samples:
    breast = load_breast_cancer()
    _, x_test, _, y_test = train_test_split(
        breast.data, breast.target == 0, test_size=0.2, random_state=7, stratify=breast.target == 0
    )
    diabetes = load_diabetes(scaled=False)
    _, d_test = train_test_split(diabetes.data, test_size=0.2, random_state=7)
    return Samples(x_test, y_test.astype(int), d_test)


# KServe v2 peers --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def peer_repository(tmp_path_factory) -> Path:
    """An exported repository (TorchScript + MLServer settings) with a slow breast model."""
    out = tmp_path_factory.mktemp("peer-repository")
    catalog = inference_bridge.Catalog.load()
    write_mlserver_repository(catalog, out, models=[BREAST, DIABETES, GENERALIST])
    slow = catalog.get(BREAST).model_copy(update={"name": SLOW})
    write_mlserver_repository(
        inference_bridge.Catalog([slow]), out, delay_seconds={SLOW: SLOW_SECONDS}
    )
    return out


MODELS = [(BREAST, "1"), (DIABETES, "1"), (GENERALIST, "1"), (SLOW, "1")]


def _start_all(peers) -> None:
    errors: list[BaseException] = []

    def start(peer) -> None:
        try:
            peer.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,)) for p in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for peer in peers:
            peer.close()
        raise errors[0]


@pytest.fixture(scope="session")
def mlserver_python() -> Path:
    return _python("mlserver")


@pytest.fixture(scope="session")
def mlservers(mlserver_python, peer_repository) -> Iterator[tuple[MLServerPeer, MLServerPeer]]:
    """Two MLServers over the same repository (two 'accelerators')."""
    peers = (
        MLServerPeer(mlserver_python, peer_repository, models=MODELS),
        MLServerPeer(mlserver_python, peer_repository, models=MODELS),
    )
    _start_all(peers)
    yield peers
    for peer in peers:
        peer.close()


@pytest.fixture
def live_mlservers(mlservers) -> tuple[MLServerPeer, MLServerPeer]:
    """The two MLServers, restarted first if an earlier test killed one."""
    for peer in mlservers:
        peer.start()
    return mlservers


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    return _python("kserve")


@pytest.fixture(scope="session")
def modelserver(kserve_python, peer_repository) -> Iterator[ModelServerPeer]:
    """KServe's ModelServer answering in typed contents."""
    peer = ModelServerPeer(
        kserve_python,
        lambda ports: kserve_arguments(
            peer_repository,
            [BREAST, DIABETES],
            grpc_port=ports.grpc,
            http_port=ports.http,
            typed_contents=True,
        ),
        models=[BREAST, DIABETES],
    )
    with peer:
        yield peer
