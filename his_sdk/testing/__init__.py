"""Helpers that start real local servers for tests and demos (Kafka broker, KServe v2 servers)."""

from his_sdk.testing._kafka import TansuBroker, TansuUnavailableError, tansu_binary
from his_sdk.testing._kserve import (
    KSERVE_REQUIREMENTS,
    MLSERVER_REQUIREMENTS,
    TORCH_CPU_INDEX,
    TORCH_CPU_REQUIREMENT,
    KServePeer,
    MLServerPeer,
    ModelServerPeer,
    PeerPorts,
    PeerUnavailableError,
    kserve_ready,
    peer_python,
    peer_venv_dir,
)

__all__ = [
    "KSERVE_REQUIREMENTS",
    "MLSERVER_REQUIREMENTS",
    "TORCH_CPU_INDEX",
    "TORCH_CPU_REQUIREMENT",
    "KServePeer",
    "MLServerPeer",
    "ModelServerPeer",
    "PeerPorts",
    "PeerUnavailableError",
    "TansuBroker",
    "TansuUnavailableError",
    "kserve_ready",
    "peer_python",
    "peer_venv_dir",
    "tansu_binary",
]
