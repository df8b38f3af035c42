"""The SRU client: another library's catalogue asked over HTTP (searchRetrieve), its MARCXML
records read by pymarc.

SRU 1.2 is asked first; a server that answers in another version (2.0's namespace, or
diagnostic 5 naming the version it speaks) is asked again in that one. The query is CQL: by
ISBN in both its forms, else by title, author and publisher, each a quoted term, so that a
title holding quotes, CQL's masking characters or its keywords ("and", "or") is read as words.
Records come as MARCXML (for a UNIMARC/CNMARC target the same slim format with UNIMARC's tags;
such a target is asked for schema "unimarc" first, and for "marcxml" when it knows no such name).

The answer is another server's, so hostile until read: parsed with defusedxml (no DTD, no
entity expansion, no external resource), at most MAX_ANSWER_BYTES, within the target's timeout
from the first byte sent to the last byte read.
"""

from __future__ import annotations

import asyncio
import io
import re
import xml.etree.ElementTree as ElementTree
from xml.sax.handler import feature_namespaces

import defusedxml.ElementTree
import defusedxml.sax
import httpx
import pymarc
from defusedxml import DefusedXmlException

from library.catalog import marc_record
from library.catalog.isbn import Isbn, parse_isbn
from library.catalog.sources.base import Candidate, SourceFailed, SourceQuery, Target

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # ten MARCXML records are some tens of kilobytes
FIRST_VERSION = "1.2"
VERSIONS = ("1.1", "1.2", "2.0")
# The indexes asked, from the context sets every SRU server maps (Bath's ISBN, Dublin Core's
# title, creator and publisher: YAZ's and Zebra's default CQL mapping among them).
INDEXES = {"isbn": "bath.isbn", "title": "dc.title", "author": "dc.creator", "publisher": "dc.publisher"}
SCHEMA_FOR_SYNTAX = {"marc21": "marcxml", "unimarc": "unimarc"}
UNKNOWN_SCHEMA = 66
UNSUPPORTED_VERSION = 5
# XML declarations that expat cannot read itself; Chinese servers send GBK or GB2312.
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_EXPAT_READS = {"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"}
_CHINESE = {"gbk", "gb2312", "gb18030", "cp936", "euc-cn", "x-gbk"}


def cql_term(text: str) -> str:
    """A term as a CQL quoted string: backslash, quote and the masking characters (* ? ^)
    escaped, whitespace made plain spaces; "and" or "or" inside it are words like the rest."""
    flat = " ".join(text.split())
    return '"' + re.sub(r'([\\"*?^])', r"\\\1", flat) + '"'


def isbn_forms(text: str) -> list[str]:
    """The ISBN-13 and ISBN-10 forms of a valid ISBN (a 979 has no ISBN-10); an invalid one as
    printed, without its hyphens (publishers print wrong ones, and catalogues keep them)."""
    parsed = parse_isbn(text)
    if isinstance(parsed, Isbn):
        return [form for form in (parsed.isbn13, parsed.isbn10) if form]
    return ["".join(ch for ch in text if ch.isalnum())]


def cql(query: SourceQuery) -> str:
    """The CQL of a query: an ISBN in either form (OR'd), else every title, author and publisher
    given (AND'ed)."""
    if query.isbn and query.isbn.strip():
        return " or ".join(f"{INDEXES['isbn']} = {cql_term(form)}" for form in isbn_forms(query.isbn))
    clauses = [f"{INDEXES[name]} = {cql_term(value)}"
               for name, value in (("title", query.title), ("author", query.author), ("publisher", query.publisher))
               if value and value.strip()]
    if not clauses:
        raise SourceFailed("source_query_empty")
    return " and ".join(clauses)


def base_url(target: Target) -> str:
    database = target.database.strip("/")
    return f"http://{target.host}:{target.port}/{database}"


def parameters(version: str, query: str, schema: str, limit: int) -> dict[str, str]:
    params = {"operation": "searchRetrieve", "version": version, "query": query, "maximumRecords": str(limit),
              "recordSchema": schema}
    params["recordXMLEscaping" if version == "2.0" else "recordPacking"] = "xml"
    return params


async def _fetch(client: httpx.AsyncClient, target: Target, params: dict[str, str]) -> tuple[int, bytes]:
    auth = (target.username, target.password or "") if target.username else None
    try:
        async with client.stream("GET", base_url(target), params=params, auth=auth,
                                 timeout=httpx.Timeout(target.timeout_seconds)) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise SourceFailed("source_garbage", f"an answer of more than {MAX_ANSWER_BYTES} bytes")
            return response.status_code, bytes(body)
    except httpx.TimeoutException:
        raise SourceFailed("source_timeout", f"no answer within {target.timeout_seconds:g} s") from None
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as error:
        raise SourceFailed("source_unreachable", str(error) or type(error).__name__) from None
    except httpx.HTTPError as error:  # the connection broke, or the answer is not HTTP
        raise SourceFailed("source_garbage", str(error) or type(error).__name__) from None


def _readable(body: bytes, charset: str) -> bytes:
    """The answer as expat reads it: a GBK (or other non-UTF) XML document decoded by Python's
    codecs and handed on as UTF-8 with its declaration changed to say so."""
    declared = _DECLARED.match(body)
    name = declared.group(1).decode("ascii").lower() if declared else None
    if name is None:
        if charset == "gb18030":
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:  # no declaration, not UTF-8, a GBK server: its own charset
                return body.decode("gb18030", "replace").encode("utf-8")
        return body
    if name in _EXPAT_READS:
        return body
    codec = "gb18030" if name in _CHINESE else name
    try:
        text = body.decode(codec)
    except (LookupError, UnicodeDecodeError):
        raise SourceFailed("source_garbage", f"an answer declared as {name} that is not") from None
    # The declaration then says UTF-8, which is what the text is handed on as.
    head, closing, rest = text.partition("?>")
    return (re.sub(r"""(encoding\s*=\s*["'])[^"']+""", r"\1utf-8", head, count=1) + closing + rest).encode("utf-8")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: ElementTree.Element | None, name: str) -> str:
    child = _child(element, name) if element is not None else None
    return (child.text or "").strip() if child is not None else ""


def _diagnostics(root: ElementTree.Element) -> list[tuple[int | None, str]]:
    """(number, what it says) of each top-level diagnostic; the number from its URI's end."""
    found = []
    holder = _child(root, "diagnostics")
    for diagnostic in list(holder) if holder is not None else []:
        uri = _text(diagnostic, "uri")
        number = uri.rpartition("/")[2]
        words = " ".join(part for part in (_text(diagnostic, "message"), _text(diagnostic, "details")) if part)
        found.append((int(number) if number.isdigit() else None, words or uri))
    return found


def parse_answer(body: bytes, charset: str = "utf-8") -> ElementTree.Element:
    """The answer's root element, or `source_garbage` for what is not XML (an HTML error page,
    a broken document, a DTD or entity a hostile server sent to expand)."""
    try:
        root = defusedxml.ElementTree.fromstring(_readable(body, charset))
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as error:
        raise SourceFailed("source_garbage", f"not XML: {error}") from None
    if _local(root.tag) not in ("searchRetrieveResponse", "explainResponse", "diagnostics"):
        raise SourceFailed("source_garbage", f"not an SRU answer: <{_local(root.tag)}>")
    return root


def _marc(element: ElementTree.Element) -> list[pymarc.Record]:
    """MARCXML records read by pymarc's own handler, through defusedxml's parser."""
    handler = pymarc.XmlHandler(strict=False)
    parser = defusedxml.sax.make_parser()
    parser.setContentHandler(handler)
    parser.setFeature(feature_namespaces, 1)
    parser.parse(io.BytesIO(ElementTree.tostring(element, encoding="utf-8")))
    return handler.records


def _candidates(element: ElementTree.Element, target: Target) -> list[Candidate]:
    raw = ElementTree.tostring(element, encoding="utf-8")
    try:
        read = _marc(element)
    except Exception as error:  # noqa: BLE001 - pymarc's handler raises whatever the record makes it
        raise SourceFailed("source_garbage", f"a record pymarc cannot read: {error}") from None
    # Kept as the converter keeps records (UTF-8 throughout), the target's syntax saying how its
    # tags are read.
    return [Candidate(target=target.name, syntax=target.syntax, raw=raw,
                      record=marc_record.unpack(marc_record.pack(marc, target.syntax)))
            for marc in read if marc is not None and marc.fields]


def decode(raw: bytes, target: Target) -> Candidate:
    """One candidate again from the MARCXML kept as its `raw` (the intake page's form sends it
    back): the same reading as when it arrived."""
    try:
        element = defusedxml.ElementTree.fromstring(raw)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as error:
        raise SourceFailed("source_garbage", f"not XML: {error}") from None
    found = _candidates(element, target)
    if len(found) != 1:
        raise SourceFailed("source_garbage", "not one MARC record")
    return found[0]


def records_in(root: ElementTree.Element, target: Target) -> list[Candidate]:
    """The MARC records of a searchRetrieve answer, inline XML or escaped as a string; a
    record another schema or a surrogate diagnostic stands for is passed over."""
    candidates = []
    holder = _child(root, "records")
    for record in _children(holder, "record") if holder is not None else []:
        data = _child(record, "recordData")
        if data is None:
            continue
        inside = list(data)
        if not inside and (data.text or "").strip():  # recordPacking=string: the XML as text
            try:
                inside = [defusedxml.ElementTree.fromstring(data.text.strip().encode("utf-8"))]
            except (ElementTree.ParseError, DefusedXmlException) as error:
                raise SourceFailed("source_garbage", f"a record that is not XML: {error}") from None
        for element in inside:
            # A collection of records is taken apart, each kept as its own raw record.
            for one in _children(element, "record") if _local(element.tag) == "collection" else [element]:
                if _local(one.tag) == "record":  # not a surrogate diagnostic, or a schema not asked for
                    candidates += _candidates(one, target)
    return candidates


async def _ask(client: httpx.AsyncClient, target: Target, question: str, limit: int) -> list[Candidate]:
    version = FIRST_VERSION
    schema = SCHEMA_FOR_SYNTAX.get(target.syntax, "marcxml")
    tried: set[tuple[str, str]] = set()
    while True:
        tried.add((version, schema))
        status, body = await _fetch(client, target, parameters(version, question, schema, limit))
        try:
            root = parse_answer(body, target.charset)
        except SourceFailed:
            if status >= 400:
                raise SourceFailed("source_refused", f"HTTP {status}") from None
            raise
        answered = _text(root, "version")
        diagnostics = _diagnostics(root)
        found = records_in(root, target)
        if found:
            return found
        numbers = {number for number, _ in diagnostics}
        if UNSUPPORTED_VERSION in numbers and answered in VERSIONS and (answered, schema) not in tried:
            version = answered
            continue
        if UNKNOWN_SCHEMA in numbers and schema != "marcxml" and (version, "marcxml") not in tried:
            schema = "marcxml"
            continue
        if diagnostics:
            raise SourceFailed("source_refused", "; ".join(words for _, words in diagnostics))
        if status >= 400:
            raise SourceFailed("source_refused", f"HTTP {status}")
        if _local(root.tag) != "searchRetrieveResponse":
            raise SourceFailed("source_garbage", f"not a searchRetrieve answer: <{_local(root.tag)}>")
        return []


async def search(target: Target, query: SourceQuery, *, client: httpx.AsyncClient | None = None,
                 limit: int = 10) -> list[Candidate]:
    """Up to `limit` records the target has for the query, or SourceFailed with the reason."""
    question = cql(query)
    try:
        async with asyncio.timeout(target.timeout_seconds):
            if client is not None:
                return await _ask(client, target, question, limit)
            async with httpx.AsyncClient(follow_redirects=True, trust_env=False) as own:
                return await _ask(own, target, question, limit)
    except TimeoutError:
        raise SourceFailed("source_timeout", f"no answer within {target.timeout_seconds:g} s") from None
