"""Machines that misbehave, over raw sockets: garbage, lines without end, half a message, a dropped
connection, fifty at once. Each gets an answer or a timeout; none disturbs the others; nothing
is half-applied. And the settings that govern it, in effect."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from library.catalog.tables import Item
from library.loans.tables import Loan
from library.selfcheck import protocol
from library.selfcheck.server import SipServer, ssl_context
from library.settings import PROJECT_ROOT, load_settings
from tests.selfcheck.conftest import PASSWORD
from tests.selfcheck.machine import Machine, first

pytestmark = pytest.mark.asyncio(loop_scope="module")

CATERPILLAR = "9787533259594"
WANG_FANG = "ZX10000001"
DATE = "20261207    100000"


def request(code: str, fixed: list[str], fields: list[tuple[str, object]], sequence: str = "0") -> bytes:
    return protocol.format_message(code, fixed, fields, sequence, True)


def login_request(login: str = "zx-rfid-utf8", password: str = PASSWORD) -> bytes:
    return request("93", ["0", "0"], [("CN", login), ("CO", password), ("CP", "lobby")])


def status_request(sequence: str = "1") -> bytes:
    return request("99", ["0", "080", "2.00"], [], sequence)


def checkout_request(barcode: str, card: str = WANG_FANG, sequence: str = "2") -> bytes:
    return request("11", ["N", "N", DATE, " " * 18],
                   [("AO", "ZX"), ("AA", card), ("AB", barcode), ("AC", ""), ("AD", "123456")], sequence)


def checkin_request(barcode: str, sequence: str = "3") -> bytes:
    return request("09", ["N", DATE, DATE], [("AP", "ZX"), ("AO", "ZX"), ("AB", barcode), ("AC", "")], sequence)


async def connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def answer(reader: asyncio.StreamReader, encoding: str = "utf-8", timeout: float = 10) -> protocol.Message:
    raw = await asyncio.wait_for(reader.readuntil(b"\r"), timeout)
    return protocol.parse(raw, encoding)


async def ask(reader, writer, data: bytes, encoding: str = "utf-8") -> protocol.Message:
    writer.write(data)
    await writer.drain()
    return await answer(reader, encoding)


async def logged_in(port: int, login: str = "zx-rfid-utf8"):
    reader, writer = await connect(port)
    assert (await ask(reader, writer, login_request(login))).fixed["ok"] == "1"
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    """What is left to read until the server closes the connection (it must, within `timeout`)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def available_copy(home: str = "ZX", isbn: str = CATERPILLAR) -> str:
    row = await Item.select(Item.barcode).where((Item.record.isbn13 == isbn) & (Item.home_branch.code == home)
                                               & (Item.status == "available")).order_by(Item.barcode).first()
    return row["barcode"]


async def status_of(barcode: str) -> str:
    return (await Item.select(Item.status).where(Item.barcode == barcode).first())["status"]


def close(writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_garbage_is_answered_with_a_resend_request_and_the_machine_carries_on(world):
    reader, writer = await logged_in(world.port)
    for garbage in (b"hello, library\r", b"\x00\x01\x02\x03\r", b"99XYZ\r", "借书\r".encode("utf-8")):
        resend = await ask(reader, writer, garbage)
        assert resend.code == "96" and resend.error_detection and resend.sequence is None
    assert (await ask(reader, writer, status_request())).fixed["online_status"] == "Y"
    close(writer)


async def test_a_damaged_checksum_asks_for_the_message_again(world):
    reader, writer = await logged_in(world.port)
    damaged = status_request()[:-5] + b"0000\r"
    assert (await ask(reader, writer, damaged)).code == "96"
    status = await ask(reader, writer, status_request("7"))
    assert status.code == "98" and status.sequence == "7"
    close(writer)


async def test_line_feeds_end_messages_too(world):
    reader, writer = await logged_in(world.port)
    writer.write(status_request("4")[:-1] + b"\r\n" + status_request("5")[:-1] + b"\n")
    assert [(await answer(reader)).sequence for _ in range(2)] == ["4", "5"]
    close(writer)


async def test_an_overlong_line_is_refused_and_the_connection_closed(world):
    reader, writer = await logged_in(world.port)
    bystander_reader, bystander_writer = await logged_in(world.port)
    writer.write(b"11" + b"X" * 10_000)
    await writer.drain()
    assert (await answer(reader)).code == "96"
    assert await closed_by_server(reader) == b""
    # The machine next to it is not disturbed.
    assert (await ask(bystander_reader, bystander_writer, status_request())).code == "98"
    close(writer)
    close(bystander_writer)


async def test_half_a_message_then_silence_times_out(world):
    # LIBRARY_SIP2_MESSAGE_SECONDS bounds the wait for the rest of a started message (1 s here).
    settings = load_settings({**os.environ, "LIBRARY_SIP2_MESSAGE_SECONDS": "1", "LIBRARY_SIP2_IDLE_SECONDS": "30"})
    server = SipServer(settings)
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await logged_in(server.port)
        barcode = await available_copy()
        writer.write(checkout_request(barcode)[:25])
        await writer.drain()
        started = time.monotonic()
        assert await closed_by_server(reader, timeout=10) == b""
        assert 0.8 < time.monotonic() - started < 5
        assert await status_of(barcode) == "available"
        close(writer)
    finally:
        await server.close()


async def test_an_idle_machine_is_let_go(world):
    # LIBRARY_SIP2_IDLE_SECONDS: a machine that says nothing for that long is disconnected.
    settings = load_settings({**os.environ, "LIBRARY_SIP2_IDLE_SECONDS": "1"})
    server = SipServer(settings)
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await logged_in(server.port)
        started = time.monotonic()
        assert await closed_by_server(reader) == b""
        assert 0.8 < time.monotonic() - started < 5
        close(writer)
    finally:
        await server.close()


async def test_a_disconnect_mid_message_applies_nothing(world):
    barcode = await available_copy()
    reader, writer = await logged_in(world.port)
    writer.write(checkout_request(barcode)[:-10])
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.2)
    assert await status_of(barcode) == "available"
    assert await Loan.count().where((Loan.item.barcode == barcode) & Loan.returned_at.is_null()) == 0


async def test_a_disconnect_while_answered_applies_the_whole_checkout(world):
    # The message arrived whole: it is carried out whole (and can be seen, and undone, at a checkin).
    barcode = await available_copy()
    reader, writer = await logged_in(world.port)
    writer.write(checkout_request(barcode))
    await writer.drain()
    writer.close()
    for _ in range(100):
        if await status_of(barcode) == "on_loan":
            break
        await asyncio.sleep(0.05)
    assert await status_of(barcode) == "on_loan"
    assert await Loan.count().where((Loan.item.barcode == barcode) & Loan.returned_at.is_null()) == 1
    reader, writer = await logged_in(world.port)
    assert (await ask(reader, writer, checkin_request(barcode))).fixed["ok"] == "1"
    assert await status_of(barcode) == "available"
    close(writer)


async def test_before_login_every_message_is_refused_in_its_own_shape(world):
    reader, writer = await connect(world.port)
    refused = await ask(reader, writer, checkout_request(await available_copy()))
    assert refused.code == "12" and refused.fixed["ok"] == "0" and refused.sequence == "2"
    assert refused.get("AF").startswith("本机尚未登录")
    status = await ask(reader, writer, status_request())
    assert status.code == "98" and status.fixed["online_status"] == "N"
    close(writer)


async def test_two_machines_lend_one_copy_at_the_same_moment(world):
    barcode = await available_copy()
    one, two = await logged_in(world.port), await logged_in(world.port, "zx-rfid-gbk")
    answers = await asyncio.gather(ask(*one, checkout_request(barcode, WANG_FANG)),
                                   ask(*two, checkout_request(barcode, "ZX10000002"), "gb18030"))
    assert sorted(reply.fixed["ok"] for reply in answers) == ["0", "1"]
    assert await Loan.count().where((Loan.item.barcode == barcode) & Loan.returned_at.is_null()) == 1
    assert (await ask(*one, checkin_request(barcode))).fixed["ok"] == "1"
    close(one[1])
    close(two[1])


async def test_fifty_machines_at_once(world):
    """Fifty connections at the same time, every one logged in and asking; among them machines that
    send garbage, an endless line, or half a message and hang up. All the others are answered."""

    async def good(index: int) -> str:
        reader, writer = await logged_in(world.port, "zx-rfid-utf8" if index % 2 else "zx-rfid-gbk")
        encoding = "utf-8" if index % 2 else "gb18030"
        status = await ask(reader, writer, status_request(str(index % 10)), encoding)
        item = await ask(reader, writer, request("17", [DATE], [("AO", "ZX"), ("AB", barcode)], "1"), encoding)
        close(writer)
        assert status.sequence == str(index % 10) and item.get("AB") == barcode
        return status.fixed["online_status"]

    async def bad(index: int) -> None:
        reader, writer = await connect(world.port)
        if index % 3 == 0:
            assert (await ask(reader, writer, b"\xff\xfegarbage\r")).code == "96"
        elif index % 3 == 1:
            writer.write(b"63" + b"9" * 9000)
            await writer.drain()
            assert (await answer(reader)).code == "96"
        else:
            writer.write(login_request()[:20])
            await writer.drain()
        close(writer)

    barcode = await available_copy()
    results = await asyncio.gather(*[good(index) for index in range(40)], *[bad(index) for index in range(10)])
    assert results[:40] == ["Y"] * 40
    for _ in range(100):
        if world.server.connections == 0:
            break
        await asyncio.sleep(0.05)
    assert world.server.connections == 0


async def test_connections_beyond_the_limit_are_turned_away(world):
    settings = load_settings({**os.environ, "LIBRARY_SIP2_MAX_CONNECTIONS": "2"})
    server = SipServer(settings)
    await server.start("127.0.0.1", 0)
    try:
        first_two = [await logged_in(server.port) for _ in range(2)]
        reader, writer = await connect(server.port)
        assert await closed_by_server(reader) == b""
        for pair in first_two:
            assert (await ask(*pair, status_request())).code == "98"
            close(pair[1])
        close(writer)
    finally:
        await server.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
@pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")  # the client library's
async def test_tls_with_the_configured_certificate(world, tmp_path):
    cert, key = tmp_path / "sip2.crt", tmp_path / "sip2.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    settings = load_settings({**os.environ, "LIBRARY_SIP2_TLS_CERT": str(cert), "LIBRARY_SIP2_TLS_KEY": str(key)})
    server = SipServer(settings, tls=ssl_context(settings))
    await server.start("127.0.0.1", 0)
    try:
        # The client library trusts a self-signed certificate once it has seen it.
        machine = await Machine(server.port, tls=True).connect()
        assert machine.client._socket.version().startswith("TLS")
        assert (await machine.login("zx-rfid-utf8", PASSWORD))["fixed"]["Ok"] == "1"
        assert first(await machine.ask("sc_status"), "AO") == "ZX"
        machine.close()
        # A machine speaking plain text to the TLS port gets nowhere, and holds nothing up.
        reader, writer = await connect(server.port)
        writer.write(login_request())
        await writer.drain()
        assert await closed_by_server(reader) == b""
        close(writer)
    finally:
        await server.close()


@pytest.mark.parametrize("command", [["sip2"], ["selfcheck", "add-kiosk"], ["selfcheck", "disable-kiosk"]])
async def test_the_commands_have_help(command):
    shown = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "library.cli", *command, "--help"],
                                    cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "Usage:" in shown.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_library_serve_runs_the_sip2_server_beside_the_web_service(world):
    """`library selfcheck add-kiosk` makes the account; `library serve` with LIBRARY_SIP2_ENABLED
    runs SIP2 on LIBRARY_SIP2_HOST:LIBRARY_SIP2_PORT beside the web service, and stops it with it."""
    environment = {**os.environ, "LANG": "en_US.UTF-8"}
    added = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "library.cli", "selfcheck", "add-kiosk", "--login", "ZX-Desk-2",
                         "--branch", "zx", "--encoding", "gb18030", "--messages", "09,17", "--password-stdin"],
        cwd=PROJECT_ROOT, input="another-kiosk-secret\n", capture_output=True, text=True, env=environment,
        timeout=60)
    assert added.returncode == 0, added.stderr
    assert "kiosk account zx-desk-2 created for ZX" in added.stdout
    sip2_port, web_port = _free_port(), _free_port()
    served = subprocess.Popen(
        [sys.executable, "-m", "library.cli", "serve", "--port", str(web_port)], cwd=PROJECT_ROOT,
        env={**environment, "LIBRARY_SIP2_ENABLED": "true", "LIBRARY_SIP2_HOST": "127.0.0.1",
             "LIBRARY_SIP2_PORT": str(sip2_port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for port in (web_port, sip2_port):  # both up, as an operator would see them
            for _ in range(600):  # a minute at most, for a busy machine
                try:
                    reader, writer = await connect(port)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail(f"nothing listens on {port}")
            if port == web_port:
                close(writer)
        login = await ask(reader, writer, login_request("zx-desk-2", "another-kiosk-secret"))
        assert login.fixed["ok"] == "1"
        status = await ask(reader, writer, status_request(), "gb18030")
        assert status.get("BX") == "NNYNYYYNYNYNNNNN" and status.get("AM") == "振兴社区智慧书房"
        close(writer)
    finally:
        served.terminate()
        served.wait(timeout=20)
    # Stopped with it: the port is free again.
    await asyncio.sleep(0.3)
    with pytest.raises(OSError):
        await connect(sip2_port)
