"""The SRU client (library.catalog.sources.sru) against servers that misbehave, each a real socket
on loopback: one that accepts and never answers, one that trickles bytes forever, one that
answers garbage, an HTML error page, an XML bomb, an external entity, a diagnostic, an answer
too big, one in GBK. The adversary is another library's server (or whoever took its address);
what it sends may cost us at most the target's timeout and a clear reason, never a crash or an
expanded entity. Our own /sru as a server: tests/server/test_sru_server.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from library.catalog.isbn import parse_isbn
from library.catalog.sources import sru
from library.catalog.sources.base import SourceFailed, SourceQuery, Target

SRW = "http://www.loc.gov/zing/srw/"
MARCXML_RECORD = ('<record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000nam a2200000 i 4500</leader>'
                  '<controlfield tag="001">X1</controlfield><datafield tag="245" ind1="1" ind2="0">'
                  '<subfield code="a">{title}</subfield></datafield></record>')


def answer(records: list[str] = (), version: str = "1.2", diagnostics: str = "", packing: str = "xml") -> str:
    items = "".join(f"<zs:record><zs:recordSchema>marcxml</zs:recordSchema><zs:recordPacking>{packing}"
                    f"</zs:recordPacking><zs:recordData>{record}</zs:recordData></zs:record>" for record in records)
    return (f'<?xml version="1.0" encoding="UTF-8"?><zs:searchRetrieveResponse xmlns:zs="{SRW}">'
            f"<zs:version>{version}</zs:version><zs:numberOfRecords>{len(records)}</zs:numberOfRecords>"
            f"<zs:records>{items}</zs:records>{diagnostics}</zs:searchRetrieveResponse>")


def diagnostic(number: int, message: str, details: str = "") -> str:
    return ('<zs:diagnostics><diag:diagnostic xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/">'
            f"<diag:uri>info:srw/diagnostic/1/{number}</diag:uri><diag:details>{details}</diag:details>"
            f"<diag:message>{message}</diag:message></diag:diagnostic></zs:diagnostics>")


@contextlib.asynccontextmanager
async def server(respond) -> AsyncIterator[tuple[int, list[dict[str, str]]]]:
    """An HTTP server on loopback: `respond(params, writer)` answers each request (or never does)."""
    asked: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            params = {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
            asked.append(params)
            await respond(params, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield port, asked
    finally:
        listening.close()


async def send(writer: asyncio.StreamWriter, body: bytes | str, status: str = "200 OK",
               content_type: str = "text/xml; charset=utf-8") -> None:
    data = body.encode() if isinstance(body, str) else body
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
                 "Connection: close\r\n\r\n".encode() + data)
    await writer.drain()


def target(port: int, **changes) -> Target:
    return Target(**{"name": "远方图书馆", "protocol": "sru", "host": "127.0.0.1", "port": port, "database": "sru",
                     "timeout_seconds": 1.0, **changes})


async def failure(port: int, query: SourceQuery = SourceQuery(isbn="9787533278267"), **changes) -> SourceFailed:
    with pytest.raises(SourceFailed) as failed:
        await sru.search(target(port, **changes), query)
    return failed.value


def test_the_cql_asked():
    isbn = "9787533278267"
    assert sru.cql(SourceQuery(isbn=isbn)) == f'bath.isbn = "{isbn}" or bath.isbn = "{parse_isbn(isbn).isbn10}"'
    assert sru.cql(SourceQuery(isbn="979-10-90636-07-1")) == 'bath.isbn = "9791090636071"'  # no ISBN-10 form
    assert sru.cql(SourceQuery(isbn="978-7-5332-7826-0")) == 'bath.isbn = "9787533278260"'  # wrong, as printed
    # Quotes, backslashes, masking characters and CQL's words stay inside one quoted term.
    assert sru.cql(SourceQuery(title='Say "hi" and * or ?\\', author="卡尔\n艾瑞")) == (
        r'dc.title = "Say \"hi\" and \* or \?\\" and dc.creator = "卡尔 艾瑞"')
    with pytest.raises(SourceFailed) as empty:
        sru.cql(SourceQuery(title="  "))
    assert empty.value.reason == "source_query_empty"


async def test_records_and_what_was_asked():
    async def respond(params, writer):
        await send(writer, answer([MARCXML_RECORD.format(title="小熊很忙"), MARCXML_RECORD.format(title="Bär")]))

    async with server(respond) as (port, asked):
        found = await sru.search(target(port), SourceQuery(title="小熊"), limit=5)
    assert [c.record.get_fields("245")[0].get_subfields("a")[0] for c in found] == ["小熊很忙", "Bär"]
    assert found[0].raw.startswith(b"<") and "小熊很忙".encode() in found[0].raw
    assert asked == [{"operation": "searchRetrieve", "version": "1.2", "query": 'dc.title = "小熊"',
                      "maximumRecords": "5", "recordSchema": "marcxml", "recordPacking": "xml"}]


async def test_a_server_that_never_answers_costs_its_timeout():
    async def respond(params, writer):
        await asyncio.sleep(3600)

    async with server(respond) as (port, _):
        assert (await failure(port, timeout_seconds=0.5)).reason == "source_timeout"


async def test_a_server_that_trickles_forever_costs_its_timeout():
    """Each byte within httpx's read timeout, the whole never: the target's timeout still holds."""
    async def respond(params, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n")
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    async with server(respond) as (port, _):
        assert (await failure(port, timeout_seconds=0.6)).reason == "source_timeout"


async def test_nobody_listening_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert (await failure(port)).reason == "source_unreachable"


@pytest.mark.parametrize(("body", "status", "reason"), [
    ("hello, this is not XML", "200 OK", "source_garbage"),
    ("<zs:searchRetrieveResponse xmlns:zs='x'><unclosed>", "200 OK", "source_garbage"),
    ("<html><body>Welcome</body></html>", "200 OK", "source_garbage"),
    ("<html><body>Internal error</body></html>", "500 Internal Server Error", "source_refused"),
    ("not found", "404 Not Found", "source_refused"),
    # An XML bomb: a billion laughs, were the entities expanded.
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
     '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><zs:searchRetrieveResponse xmlns:zs="' + SRW +
     '"><zs:version>&lol3;</zs:version></zs:searchRetrieveResponse>', "200 OK", "source_garbage"),
    # An external entity: the server would have us read our own files.
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]><zs:searchRetrieveResponse '
     'xmlns:zs="' + SRW + '"><zs:version>&secret;</zs:version></zs:searchRetrieveResponse>', "200 OK",
     "source_garbage"),
])
async def test_garbage_and_refusals(body, status, reason):
    async def respond(params, writer):
        await send(writer, body, status)

    async with server(respond) as (port, _):
        assert (await failure(port)).reason == reason


async def test_a_diagnostic_is_a_refusal_with_what_it_says():
    async def respond(params, writer):
        await send(writer, answer(diagnostics=diagnostic(16, "Unsupported index", "bath.isbn")))

    async with server(respond) as (port, _):
        refused = await failure(port)
    assert refused.reason == "source_refused"
    assert "Unsupported index" in refused.detail and "bath.isbn" in refused.detail


async def test_an_answer_too_big_is_set_aside(monkeypatch):
    monkeypatch.setattr(sru, "MAX_ANSWER_BYTES", 10_000)

    async def respond(params, writer):
        await send(writer, answer([MARCXML_RECORD.format(title="长" * 1000)] * 10))

    async with server(respond) as (port, _):
        assert (await failure(port)).reason == "source_garbage"


async def test_the_version_the_server_speaks_and_the_schema_it_knows():
    """An SRU 1.1 server refuses 1.2 naming its own version; a server that knows no "unimarc"
    schema is asked for marcxml: the client asks again, once each, and gets the records."""
    async def respond(params, writer):
        if params["version"] != "1.1":
            await send(writer, answer(version="1.1", diagnostics=diagnostic(5, "Unsupported version", "1.1")))
        elif params["recordSchema"] != "marcxml":
            await send(writer, answer(version="1.1", diagnostics=diagnostic(66, "Unknown schema for retrieval")))
        else:
            await send(writer, answer([MARCXML_RECORD.format(title="图书")], version="1.1"))

    async with server(respond) as (port, asked):
        found = await sru.search(target(port, syntax="unimarc"), SourceQuery(isbn="9787533278267"))
    assert [c.syntax for c in found] == ["unimarc"]
    assert [(a["version"], a["recordSchema"]) for a in asked] == [("1.2", "unimarc"), ("1.1", "unimarc"),
                                                                  ("1.1", "marcxml")]


async def test_sru_2_answers_records_as_strings_and_gbk():
    """SRU 2.0's namespace, records escaped as text, and a document in GBK (which expat cannot
    read by itself): the Chinese comes through."""
    escaped = MARCXML_RECORD.format(title="猜猜我有多爱你").replace("<", "&lt;").replace(">", "&gt;")
    body = ('<?xml version="1.0" encoding="GBK"?><sru:searchRetrieveResponse '
            'xmlns:sru="http://docs.oasis-open.org/ns/search-ws/sruResponse"><sru:version>2.0</sru:version>'
            '<sru:numberOfRecords>1</sru:numberOfRecords><sru:records><sru:record><sru:recordSchema>marcxml'
            '</sru:recordSchema><sru:recordXMLEscaping>string</sru:recordXMLEscaping><sru:recordData>'
            f'{escaped}</sru:recordData></sru:record></sru:records></sru:searchRetrieveResponse>').encode("gbk")

    async def respond(params, writer):
        await send(writer, body, content_type="text/xml; charset=GBK")

    async with server(respond) as (port, _):
        found = await sru.search(target(port, charset="gb18030"), SourceQuery(title="猜猜"))
    assert found[0].record.get_fields("245")[0].get_subfields("a")[0] == "猜猜我有多爱你"


async def test_no_records_is_an_empty_answer():
    async def respond(params, writer):
        await send(writer, answer())

    async with server(respond) as (port, _):
        assert await sru.search(target(port), SourceQuery(title="没有")) == []


async def test_a_collection_is_taken_apart_and_decode_refuses_garbage():
    collection = ('<collection xmlns="http://www.loc.gov/MARC21/slim">' + MARCXML_RECORD.format(title="一")
                  .replace(' xmlns="http://www.loc.gov/MARC21/slim"', "") + MARCXML_RECORD.format(title="二")
                  .replace(' xmlns="http://www.loc.gov/MARC21/slim"', "") + "</collection>")

    async def respond(params, writer):
        await send(writer, answer([collection]))

    async with server(respond) as (port, _):
        found = await sru.search(target(port), SourceQuery(title="x"))
    assert [sru.decode(c.raw, target(port)).record.get_fields("245")[0].get_subfields("a")[0] for c in found] == [
        "一", "二"]
    for garbage in (b"not xml", b'<!DOCTYPE r [<!ENTITY e "e">]><record>&e;</record>', collection.encode()):
        with pytest.raises(SourceFailed) as refused:
            sru.decode(garbage, target(port))
        assert refused.value.reason == "source_garbage"
