"""The SIP2 server: asyncio TCP (optionally TLS), one session per machine's connection.

Real machines misbehave: they send line noise, lines without end, half a message before
the network drops. Each connection reads at most one message's worth of bytes, waits a
bounded time for the rest, and answers what it cannot read with 96 ("send it again").
A message is acted on only once it has arrived whole, and each action is one transaction
of the loans services, shielded from the connection going away: nothing is half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable

from prometheus_client import Gauge

from library.clock import now_utc
from library.db import close_connections, engine, prepare_sqlite
from library.selfcheck import protocol, rules
from library.selfcheck.activity import Tallies
from library.selfcheck.acs import Desk, Reply, Session
from library.settings import Settings

log = logging.getLogger("library.selfcheck")

# Machines connected now, for /metrics (library/web/metrics.py). The server runs in a process of its
# own: its figure reaches /metrics through PROMETHEUS_MULTIPROC_DIR, summed over live processes.
SESSIONS = Gauge("library_sip2_sessions", "Self-check machines connected to the SIP2 server",
                 multiprocess_mode="livesum")

# Longer than any request a machine sends (a checkout with every optional field is ~300 bytes).
MAX_MESSAGE_BYTES = 4096


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the SIP2 port when a certificate and key are configured."""
    if not settings.sip2_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.sip2_tls_cert, settings.sip2_tls_key)
    return context


class SipServer:
    """Serves SIP2 on a TCP port. `clock` is for tests; the time is read once per message."""

    def __init__(self, settings: Settings, *, idle_seconds: float | None = None,
                 message_seconds: float | None = None, max_connections: int | None = None,
                 tls: ssl.SSLContext | None = None, clock: Callable = now_utc) -> None:
        self.settings = settings
        self.idle_seconds = idle_seconds if idle_seconds is not None else settings.sip2_idle_seconds
        self.message_seconds = message_seconds if message_seconds is not None else settings.sip2_message_seconds
        self.max_connections = max_connections or settings.sip2_max_connections
        self.tls = tls
        self.clock = clock
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._work: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Each kiosk's checkouts, returns, renewals, refusals and errors, for the staff home.
        self.tallies = Tallies(settings.time_zone)

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._server = await asyncio.start_server(self._connection, host, port, ssl=self.tls,
                                                  ssl_handshake_timeout=self.message_seconds if self.tls else None,
                                                  limit=MAX_MESSAGE_BYTES * 2)
        self.tallies.start()
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, let messages being answered finish (their transactions commit), then stop."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        if self._work:
            await asyncio.wait(self._work, timeout=30)
        for writer in list(self._writers):
            writer.close()  # each conversation sees the end of its stream and finishes
        for _ in range(100):
            if not self._writers:
                break
            await asyncio.sleep(0.01)
        await self.tallies.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if self.connections >= self.max_connections:
            log.warning("SIP2 connection from %s refused: %s connections open", address, self.connections)
            writer.close()
            return
        self.connections += 1
        SESSIONS.inc()
        self._writers.add(writer)
        session = Session(address=address, time_zone=self.settings.time_zone,
                          signin_limit=self.settings.signin_failures_per_minute)
        try:
            await self._converse(reader, writer, session)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as error:
            log.info("SIP2 connection from %s dropped: %s", address, error)
        finally:
            self.connections -= 1
            SESSIONS.dec()
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session) -> None:
        desk = Desk(session)
        buffer = bytearray()
        last_answer: bytes | None = None
        while True:
            line = self._next_line(buffer)
            if line is None:
                if len(buffer) > MAX_MESSAGE_BYTES:
                    log.warning("SIP2 message from %s longer than %s bytes: asked to resend, closing",
                                session.address, MAX_MESSAGE_BYTES)
                    await self._send(writer, self._resend_request(session))
                    return
                # Idle between messages for long; within a message, briefly.
                timeout = self.message_seconds if buffer else self.idle_seconds
                try:
                    # asyncio.timeout, not wait_for: no task made for every read of every message
                    async with asyncio.timeout(timeout):
                        chunk = await reader.read(MAX_MESSAGE_BYTES)
                except (asyncio.TimeoutError, TimeoutError):
                    log.info("SIP2 connection from %s timed out (%s)", session.address,
                             "half a message" if buffer else "idle")
                    return
                if not chunk:
                    return  # the machine went away; a half message is dropped unread
                buffer += chunk
                continue
            if not line.strip():
                continue  # CR LF endings leave an empty line
            unreadable: protocol.ProtocolError | None = None
            try:
                message = self._parse(line, session)
            except protocol.ProtocolError as error:
                message, unreadable = None, error
            if session.kiosk is not None and not await desk.still_enabled(message):
                log.warning("kiosk %s is disabled: its connection from %s is cut off", session.kiosk.login,
                            session.address)
                return
            if message is None:
                assert unreadable is not None
                log.info("SIP2 message from %s unreadable (%s): asked to resend", session.address, unreadable.reason)
                await self._send(writer, self._resend_request(session))
                continue
            if message.code == "97":
                # The machine did not get our last answer whole: the same bytes again.
                await self._send(writer, last_answer or self._resend_request(session))
                continue
            task = asyncio.ensure_future(self._answer(desk, message))
            self._work.add(task)
            task.add_done_callback(self._work.discard)
            # Shielded: a dropped connection or a server stop never cuts a transaction in two.
            reply = await asyncio.shield(task)
            last_answer = protocol.format_message(reply.code, reply.fixed, reply.fields, message.sequence,
                                                  message.error_detection, session.encoding)
            await self._send(writer, last_answer)

    @staticmethod
    def _parse(line: bytes, session: Session) -> protocol.Message:
        """A message in the kiosk's encoding; before login, whichever of the two reads it (the
        login names the kiosk, whose account says which encoding it speaks)."""
        if session.kiosk is not None:
            return protocol.parse(line, session.kiosk.encoding)
        try:
            return protocol.parse(line, "utf-8")
        except protocol.ProtocolError:
            return protocol.parse(line, "gb18030")

    async def _answer(self, desk: Desk, message: protocol.Message) -> Reply:
        now = self.clock()
        reply = await desk.answer(message, now)
        kiosk = desk.session.kiosk
        if kiosk is not None:
            for kind, number in rules.outcome_counts(reply.code, reply.fixed, reply.failed):
                self.tallies.add(kiosk.uuid, kiosk.branch_id, kind, now, number)
        return reply

    @staticmethod
    def _next_line(buffer: bytearray) -> bytes | None:
        """Take one message off the buffer: ended by CR (the specification), or LF (some machines)."""
        ends = [position for position in (buffer.find(b"\r"), buffer.find(b"\n")) if position >= 0]
        if not ends:
            return None
        end = min(ends)
        line = bytes(buffer[:end])
        del buffer[:end + 1]
        return line

    @staticmethod
    def _resend_request(session: Session) -> bytes:
        # 96 carries a checksum and never a sequence number (the specification's rule for it).
        return protocol.format_message("96", [], [], None, True, session.encoding)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        # A machine that stops reading holds its own connection only, for a bounded time.
        async with asyncio.timeout(self.message_seconds):
            await writer.drain()


async def serve(settings: Settings, host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
    """Run the SIP2 server until cancelled (the `library sip2` command)."""
    db = engine()
    if settings.engine == "postgres":
        await db.start_connection_pool(min_size=2, max_size=20)
    else:
        await prepare_sqlite()
    server = SipServer(settings, tls=ssl_context(settings))
    await server.start(host, port)
    if ready:
        ready(server.port)
    # SIGTERM (from `library serve`, systemd, ...) stops it as Ctrl-C does: the messages being
    # answered finish first.
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
        if settings.engine == "postgres":
            await db.close_connection_pool()
        else:
            await close_connections()
