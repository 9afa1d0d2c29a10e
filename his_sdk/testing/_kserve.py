"""KServe v2 inference servers (MLServer, KServe ModelServer) on loopback, in their own venvs.

Inference servers pin libraries the gateway cannot share (MLServer 1.7 and kserve 0.21 both
want protobuf below 7, the gateway's generated code 7.35 or later; MLServer also caps
fastapi), so each runs from a virtual environment of its own,
built once by :func:`peer_python` and cached under ``.his/peer-venvs/<key>/`` (or
``$HIS_PEER_VENV_DIR``), keyed by the Python version and the requirements. A built venv is
reused without touching the network.

:class:`MLServerPeer` and :class:`ModelServerPeer` start a server on free loopback ports and
wait until it reports itself and its models ready over the KServe v2 gRPC protocol; readiness
is probed with raw protobuf bytes, so this module needs no inference client library.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc

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
    "kserve_ready",
    "peer_python",
    "peer_venv_dir",
]

_log = logging.getLogger(__name__)

MLSERVER_REQUIREMENTS: tuple[str, ...] = ("mlserver==1.7.1",)
"""MLServer, as checked against ``tritonclient`` here."""
KSERVE_REQUIREMENTS: tuple[str, ...] = ("kserve==0.21.0",)
"""KServe's ModelServer."""
TORCH_CPU_REQUIREMENT = "torch==2.13.0+cpu"
"""The CPU build of torch, for runtimes that serve TorchScript."""
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
"""Where CPU builds of torch live (PyPI's Linux wheels bundle CUDA)."""

_COMPLETE = ".his-peer-complete"
_SERVICE = "/inference.GRPCInferenceService"


class PeerUnavailableError(RuntimeError):
    """A peer's virtual environment cannot be built, or the server did not become ready."""


def peer_venv_dir() -> Path:
    """Where peer venvs are cached: ``$HIS_PEER_VENV_DIR`` or ``.his/peer-venvs``."""
    return Path(os.environ.get("HIS_PEER_VENV_DIR") or Path.cwd() / ".his" / "peer-venvs")


def _venv_key(requirements: Sequence[str], first: Sequence[str], index_urls: Sequence[str]) -> str:
    identity = {
        "python": list(sys.version_info[:2]),
        "platform": sys.platform,
        "requirements": sorted(requirements),
        "first": sorted(first),
        "index_urls": list(index_urls),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def peer_python(
    requirements: Sequence[str],
    *,
    first: Sequence[str] = (),
    extra_index_urls: Sequence[str] = (),
    cache_dir: Path | None = None,
    timeout: float = 1800.0,
) -> Path:
    """The Python of a venv holding ``first`` and ``requirements``, built on first use.

    ``first`` is installed before the rest, with ``extra_index_urls``: the torch CPU build
    comes from its own index, and only that step asks it (an index that cannot be reached
    would otherwise be retried for every dependency). Concurrent callers (test workers) wait
    on a file lock for one build. A failed build leaves nothing behind.

    Args:
        requirements: pip requirement specifiers, from the default indexes.
        first: Requirements installed first, with the extra indexes.
        extra_index_urls: Extra package indexes for ``first`` (the torch CPU index).
        cache_dir: The cache; :func:`peer_venv_dir` by default.
        timeout: Seconds each pip step may take.

    Raises:
        PeerUnavailableError: The venv cannot be built (no network and no cache, a
            dependency conflict); the message quotes pip's last lines.
    """
    root = cache_dir or peer_venv_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / _venv_key(requirements, first, extra_index_urls)
    python = venv / "bin" / "python"
    with open(root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _COMPLETE).is_file() and python.exists():
            return python
        if venv.exists():
            shutil.rmtree(venv)
        base = getattr(sys, "_base_executable", sys.executable)
        _log.warning("building peer venv %s for %s (once)", venv, " ".join([*first, *requirements]))
        try:
            _run([base, "-m", "venv", str(venv)], timeout=300)
            command = [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]
            if first:
                indexes = [arg for url in extra_index_urls for arg in ("--extra-index-url", url)]
                _run([*command, "--retries", "1", *indexes, *first], timeout=timeout)
            _run([*command, *requirements], timeout=timeout)
        except PeerUnavailableError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / _COMPLETE).write_text(json.dumps([*first, *requirements]) + "\n")
        return python


def _run(command: Sequence[str], *, timeout: float) -> None:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailableError(f"{command[0]} failed: {exc}") from exc
    if completed.returncode != 0:
        output = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise PeerUnavailableError(
            f"{' '.join(command[:4])} ... exited with {completed.returncode}:\n{output}"
        )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _string_field(number: int, value: str) -> bytes:
    data = value.encode()
    return bytes([number << 3 | 2]) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def kserve_ready(
    target: str, models: Sequence[tuple[str, str]] = (), *, timeout: float = 1.0
) -> bool:
    """Whether a KServe v2 gRPC server is ready, and each ``(name, version)`` model too."""

    def ask(channel: grpc.Channel, method: str, request: bytes) -> bool:
        call = channel.unary_unary(f"{_SERVICE}/{method}")
        try:
            answer = call(request, timeout=timeout)
        except grpc.RpcError:
            return False
        # Both answers are {bool ready = 1}: field 1, varint 1.
        return bool(answer == b"\x08\x01")

    with grpc.insecure_channel(target) as channel:
        if not ask(channel, "ServerReady", b""):
            return False
        return all(
            ask(
                channel,
                "ModelReady",
                _string_field(1, name) + (_string_field(2, version) if version else b""),
            )
            for name, version in models
        )


@dataclass(frozen=True, slots=True)
class PeerPorts:
    """The loopback ports of one server.

    Attributes:
        grpc: KServe v2 gRPC.
        http: KServe v2 REST.
        metrics: Prometheus metrics (MLServer).
    """

    grpc: int
    http: int
    metrics: int


class KServePeer:
    """A KServe v2 server in a subprocess on loopback ports kept across restarts.

    Args:
        command: Builds the command line from the ports.
        models: ``(name, version)`` pairs that must be ready; version ``""`` for servers
            without versions.
        env: Extra environment variables.
        cwd: Working directory of the server.
        host: Loopback address the server is reached at.
        startup_timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        command: Callable[[PeerPorts], list[str]],
        *,
        models: Sequence[tuple[str, str]],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 90.0,
    ) -> None:
        self._command = command
        self.models = tuple(models)
        self._env = dict(env or {})
        self._cwd = cwd
        self.host = host
        self._startup_timeout = startup_timeout
        self.ports = PeerPorts(_free_port(host), _free_port(host), _free_port(host))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def target(self) -> str:
        """``host:port`` of the gRPC endpoint."""
        return f"{self.host}:{self.ports.grpc}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        }
        env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, **self._env)
        return env

    def start(self) -> Self:
        """Start the server and wait until it and its models are ready.

        Raises:
            PeerUnavailableError: It exited or was not ready in time; the message quotes
                its log.
        """
        if self.running:
            return self
        if self._log is None:
            handle, name = tempfile.mkstemp(prefix="his-kserve-peer-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
            self._log = open(self._log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self._command(self.ports),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            cwd=self._cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PeerUnavailableError(
                    f"the server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if kserve_ready(self.target, self.models, timeout=1.0):
                return self
            time.sleep(0.2)
        self.stop()
        raise PeerUnavailableError(f"the server was not ready in time:\n{self.log_tail()}")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL to its process group), as a crash would."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._process = None

    def close(self) -> None:
        """Stop the server and remove its log."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MLServerPeer(KServePeer):
    """MLServer serving a model repository (folders with ``model-settings.json``).

    Args:
        python: The Python of a venv holding ``mlserver`` and what the runtimes import.
        repository: The model repository.
        models: ``(name, version)`` pairs to wait for.
        max_message_bytes: gRPC message cap (MLServer's default is gRPC's 4 MiB).
        host: Loopback address to bind.
        startup_timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        python: Path,
        repository: Path,
        *,
        models: Sequence[tuple[str, str]],
        max_message_bytes: int = 64 * 1024 * 1024,
        host: str = "127.0.0.1",
        startup_timeout: float = 90.0,
    ) -> None:
        executable = python.parent / "mlserver"

        def command(ports: PeerPorts) -> list[str]:
            return [str(executable), "start", str(repository)]

        super().__init__(
            command,
            models=models,
            cwd=repository,
            host=host,
            startup_timeout=startup_timeout,
        )
        self._env.update(
            {
                "MLSERVER_HOST": host,
                "MLSERVER_GRPC_PORT": str(self.ports.grpc),
                "MLSERVER_HTTP_PORT": str(self.ports.http),
                "MLSERVER_METRICS_PORT": str(self.ports.metrics),
                "MLSERVER_PARALLEL_WORKERS": "0",
                "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": str(max_message_bytes),
                "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
            }
        )


class ModelServerPeer(KServePeer):
    """KServe's ``ModelServer`` running a script that calls ``ModelServer.start``.

    KServe 0.21 binds all interfaces (it has no host option); it is reached on loopback.

    Args:
        python: The Python of a venv holding ``kserve`` and what the script imports.
        arguments: Builds the script and its arguments from the ports.
        models: Model names to wait for (KServe has no versions).
        startup_timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        python: Path,
        arguments: Callable[[PeerPorts], list[str]],
        *,
        models: Sequence[str],
        startup_timeout: float = 90.0,
    ) -> None:
        def command(ports: PeerPorts) -> list[str]:
            return [str(python), *arguments(ports)]

        super().__init__(command, models=[(m, "") for m in models], startup_timeout=startup_timeout)
