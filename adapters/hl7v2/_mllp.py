"""MLLP over asyncio: framing, a pipelining listener, and a persistent client connection.

A frame is ``0x0B message 0x1C 0x0D``. The listener reads frames as they come, hands each to a
:class:`FrameHandler` concurrently, and writes the acknowledgments back in arrival order, so a
sender may pipeline many messages on one connection. Every complete frame gets an answer (or,
for an oversized one, a reject): the listener never drops a connection in place of a NAK.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "END_BLOCK",
    "START_BLOCK",
    "FrameHandler",
    "MllpConnection",
    "MllpListener",
    "PeerInfo",
    "frame",
]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_HEAD_BYTES = 2048

_log = logging.getLogger(__name__)


def frame(message: bytes) -> bytes:
    """Wrap one message in MLLP start and end blocks."""
    return START_BLOCK + message + END_BLOCK


@dataclass(frozen=True)
class PeerInfo:
    """Who sent a frame."""

    host: str
    port: int
    tls_subject: str = ""


class FrameHandler(Protocol):
    """What the listener calls for each frame; each returns the reply bytes or None."""

    async def handle(self, data: bytes, peer: PeerInfo) -> bytes | None:
        """Process one complete message; return the ACK to send (None sends nothing)."""
        ...

    def too_large(self, head: bytes, size: int, peer: PeerInfo) -> bytes:
        """The reject for a frame over the size limit; ``head`` is its first bytes."""
        ...

    def failed(self, data: bytes, error: Exception, peer: PeerInfo) -> bytes:
        """The NAK for a frame whose handling raised unexpectedly."""
        ...


class _FrameTooLarge:
    __slots__ = ("head", "size")

    def __init__(self, head: bytes, size: int) -> None:
        self.head = head
        self.size = size


class MllpListener:
    """An asyncio MLLP server.

    Args:
        handler: Processes frames and builds acknowledgments.
        host: Address to bind (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        ssl_context: Server TLS context; require client certificates in it for mutual TLS.
        max_message_bytes: Larger frames are read to their end, discarded and rejected.
        idle_timeout: Seconds without a byte before a connection is closed.
        allowed_peers: Networks (``10.0.0.0/8``, ``127.0.0.1``) allowed to connect; empty
            allows any.
        max_in_flight: Frames of one connection processed at once before reading pauses.
    """

    def __init__(
        self,
        handler: FrameHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int = 1024 * 1024,
        idle_timeout: float = 300.0,
        allowed_peers: Sequence[str] = (),
        max_in_flight: int = 64,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._max = max_message_bytes
        self._idle = idle_timeout
        self._allowed = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        self._max_in_flight = max_in_flight
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections_refused = 0

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, ssl=self._ssl, limit=2**20
        )

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, close open connections and wait for their in-flight replies.

        Args:
            grace: Seconds to wait for connection handlers before cancelling them.
        """
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _peer_allowed(self, host: str) -> bool:
        if not self._allowed:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self._allowed)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("", 0)
        subject = ""
        cert = writer.get_extra_info("peercert")
        if cert:
            subject = ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
        peer = PeerInfo(str(peername[0]), int(peername[1]), subject)
        if not self._peer_allowed(peer.host):
            # Refused before any message was read, so there is nothing to acknowledge.
            self.connections_refused += 1
            _log.warning("MLLP connection from a peer outside allowed_peers refused")
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            return
        pending: asyncio.Queue[asyncio.Future[bytes | None] | None] = asyncio.Queue(
            self._max_in_flight
        )
        replier = asyncio.create_task(self._reply_loop(pending, writer))
        try:
            await self._read_loop(reader, pending, peer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            _log.info("MLLP connection ended: %s", type(exc).__name__)
        finally:
            # The reply loop drains the queue until it sees None, so this put cannot block
            # for longer than the in-flight frames take.
            await pending.put(None)
            await replier
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    async def _read_loop(
        self,
        reader: asyncio.StreamReader,
        pending: asyncio.Queue[asyncio.Future[bytes | None] | None],
        peer: PeerInfo,
    ) -> None:
        buffer = bytearray()
        discarding: _FrameTooLarge | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), self._idle)
            except TimeoutError:
                if buffer or discarding:
                    _log.warning("MLLP connection idle with an unfinished frame; closing")
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                if discarding is not None:
                    end = buffer.find(END_BLOCK)
                    if end < 0:
                        discarding.size += max(0, len(buffer) - 1)
                        del buffer[:-1]
                        break
                    discarding.size += end
                    del buffer[: end + 2]
                    reply = self._handler.too_large(discarding.head, discarding.size, peer)
                    fut: asyncio.Future[bytes | None] = loop.create_future()
                    fut.set_result(reply)
                    await pending.put(fut)
                    discarding = None
                    continue
                start = buffer.find(START_BLOCK)
                if start < 0:
                    buffer.clear()
                    break
                if start > 0:
                    del buffer[:start]
                end = buffer.find(END_BLOCK, 1)
                if end < 0:
                    if len(buffer) - 1 > self._max:
                        discarding = _FrameTooLarge(
                            bytes(buffer[1 : 1 + _HEAD_BYTES]), len(buffer) - 1
                        )
                        buffer.clear()
                    break
                data = bytes(buffer[1:end])
                del buffer[: end + 2]
                if len(data) > self._max:
                    reply = self._handler.too_large(data[:_HEAD_BYTES], len(data), peer)
                    done: asyncio.Future[bytes | None] = loop.create_future()
                    done.set_result(reply)
                    await pending.put(done)
                    continue
                await pending.put(asyncio.ensure_future(self._safe_handle(data, peer)))

    async def _safe_handle(self, data: bytes, peer: PeerInfo) -> bytes | None:
        try:
            return await self._handler.handle(data, peer)
        except Exception as exc:
            _log.exception("MLLP frame handler failed")
            return self._handler.failed(data, exc, peer)

    async def _reply_loop(
        self,
        pending: asyncio.Queue[asyncio.Future[bytes | None] | None],
        writer: asyncio.StreamWriter,
    ) -> None:
        broken = False
        while True:
            fut = await pending.get()
            if fut is None:
                return
            reply = await fut
            if reply is None or broken:
                continue
            try:
                writer.write(frame(reply))
                await writer.drain()
            except (ConnectionError, OSError, ssl.SSLError) as exc:
                # Keep draining so the reader never blocks on a full queue.
                broken = True
                _log.info("MLLP reply could not be written: %s", type(exc).__name__)


class MllpConnection:
    """A persistent client connection that sends one message and reads its reply.

    Args:
        host: Receiver address.
        port: Receiver port.
        ssl_context: Client TLS context (with a client certificate for mutual TLS).
        server_hostname: Name checked against the server certificate.
        connect_timeout: Seconds to establish the connection.
        max_reply_bytes: Largest acknowledgment accepted.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        max_reply_bytes: int = 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._connect_timeout = connect_timeout
        self._max_reply = max_reply_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection if it is not open."""
        if self.connected:
            return
        kwargs: dict[str, object] = {"limit": self._max_reply + 16}
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
            kwargs["server_hostname"] = self._server_hostname or self.host
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, **kwargs),  # type: ignore[arg-type]
            self._connect_timeout,
        )

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    async def send(self, message: bytes) -> None:
        """Send one framed message without waiting for a reply."""
        await self.connect()
        assert self._writer is not None
        self._writer.write(frame(message))
        await self._writer.drain()

    async def receive(self, reply_timeout: float) -> bytes:
        """Read the next framed reply.

        Raises:
            TimeoutError: Nothing complete arrived in time.
            ConnectionError: The peer closed the connection.
        """
        assert self._reader is not None
        data = await asyncio.wait_for(self._reader.readuntil(END_BLOCK), reply_timeout)
        start = data.find(START_BLOCK)
        return data[start + 1 : -2] if start >= 0 else data[:-2]

    async def request(self, message: bytes, reply_timeout: float) -> bytes:
        """Send one message and return its reply; the connection stays open.

        On any failure the connection is closed, so the next call reconnects and no late
        reply to this message can be mistaken for the reply to the next one.
        """
        async with self._lock:
            try:
                await self.send(message)
                return await self.receive(reply_timeout)
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ssl.SSLError,
            ):
                await self.close()
                raise
