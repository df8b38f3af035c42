"""Z39.50 through YAZ's ZOOM C API (Debian's libyaz5), called with ctypes.

YAZ encodes and decodes the protocol (BER, the init, search and present requests); this module
only says what to ask and reads the records' bytes. ZOOM's blocking calls run in a worker
thread (a pool of this module's own), so the event loop never waits on a target; ZOOM's own
`timeout` option ends a stuck connection inside that thread, and `asyncio.wait_for` gives the
page its answer on time even before it does.

Records are asked for "raw": the ISO 2709 bytes as the target sent them, decoded here in the
target's character set (library.catalog.marc reads UTF-8, MARC-8 and GBK/GB18030), so that a
Chinese server's GBK CNMARC is read exactly as our MARC import reads a GBK file.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from library.catalog import marc, marc_record
from library.catalog.isbn import Isbn, parse_isbn
from library.catalog.sources.base import Candidate, SourceFailed, SourceQuery, Target
from library.errors import DomainError

# ZOOM's own error codes (yaz/zoom.h); lower numbers are the server's Bib-1 diagnostics.
ZOOM_ERROR_CONNECT = 10000
ZOOM_ERROR_DECODE = 10003
ZOOM_ERROR_CONNECTION_LOST = 10004
ZOOM_ERROR_INIT = 10005
ZOOM_ERROR_TIMEOUT = 10007
_REASONS = {ZOOM_ERROR_CONNECT: "source_unreachable", ZOOM_ERROR_TIMEOUT: "source_timeout",
            ZOOM_ERROR_DECODE: "source_garbage", ZOOM_ERROR_CONNECTION_LOST: "source_garbage",
            ZOOM_ERROR_INIT: "source_refused"}
# ZOOM's names of the record syntaxes we read.
RECORD_SYNTAX = {"marc21": "usmarc", "unimarc": "unimarc"}
# Bib-1 use attributes (the Z39.50 profile every library catalogue answers).
USE = {"isbn": 7, "title": 4, "author": 1003, "publisher": 1018}
LIBRARY_NAMES = ("libyaz.so.5", "yaz")
# ZOOM blocks its thread for up to a target's timeout (a hanging catalogue holds one until then):
# a pool of its own, so that hanging catalogues never queue up the event loop's default pool
# (password hashing, file reads) or each other's next scans.
_THREADS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="z3950")


class YazMissing(RuntimeError):
    """Debian's libyaz5 is not installed (scripts/ensure_yaz.sh installs it)."""


@lru_cache(maxsize=1)
def zoom() -> ctypes.CDLL:
    """libyaz, with the ZOOM functions' C types declared (a pointer is not an int on 64 bits)."""
    for name in LIBRARY_NAMES:
        path = name if name.endswith(".5") else ctypes.util.find_library(name)
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError:
            continue
    else:
        raise YazMissing("libyaz5 is not installed")
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, result, arguments in (
        ("ZOOM_options_create", p, []),
        ("ZOOM_options_set", None, [p, s, s]),
        ("ZOOM_options_destroy", None, [p]),
        ("ZOOM_connection_create", p, [p]),
        ("ZOOM_connection_connect", None, [p, s, i]),
        ("ZOOM_connection_error_x", i, [p, ctypes.POINTER(s), ctypes.POINTER(s), ctypes.POINTER(s)]),
        ("ZOOM_connection_search_pqf", p, [p, s]),
        ("ZOOM_connection_destroy", None, [p]),
        ("ZOOM_resultset_size", ctypes.c_size_t, [p]),
        ("ZOOM_resultset_record", p, [p, ctypes.c_size_t]),
        ("ZOOM_resultset_destroy", None, [p]),
        ("ZOOM_record_get", ctypes.c_void_p, [p, s, ctypes.POINTER(i)]),
    ):
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib


def available() -> bool:
    try:
        zoom()
    except YazMissing:
        return False
    return True


def _term(text: str) -> str:
    """A PQF term in double quotes: a quote or backslash in a title is escaped, never a syntax error."""
    cleaned = " ".join(text.replace("\\", "\\\\").replace('"', '\\"').split())
    return f'"{cleaned}"'


def isbn_forms(text: str) -> list[str]:
    """The ISBN as both forms a catalogue may have indexed it under (13 and 10 digits); text
    that is no valid ISBN is asked as it is."""
    parsed = parse_isbn(text)
    if isinstance(parsed, Isbn):
        return [form for form in (parsed.isbn13, parsed.isbn10) if form]
    return ["".join(ch for ch in text if ch.isalnum())]


def pqf(query: SourceQuery) -> str:
    """The query in PQF with Bib-1 use attributes: by ISBN (either form, OR'd), else every
    title/author/publisher given, AND'ed."""
    if query.isbn:
        forms = isbn_forms(query.isbn)
        clauses = [f"@attr 1={USE['isbn']} {_term(form)}" for form in forms]
        return ("@or " * (len(clauses) - 1)) + " ".join(clauses)
    # 4=6: the words in any order, none truncated (a Chinese title is one word to most servers).
    clauses = [f"@attr 1={USE[name]} @attr 4=6 {_term(value)}"
               for name, value in (("title", query.title), ("author", query.author), ("publisher", query.publisher))
               if value and value.strip()]
    if not clauses:
        raise SourceFailed("source_query_empty")
    return ("@and " * (len(clauses) - 1)) + " ".join(clauses)


def decode(raw: bytes, target: Target) -> Candidate:
    """One record's ISO 2709 bytes, read in the target's record syntax and character set."""
    try:
        read = [record for _, record, _ in marc.read_marc(raw, target.charset) if record is not None]
    except (DomainError, ValueError) as error:
        raise SourceFailed("source_garbage", str(error)) from None
    if len(read) != 1 or not read[0].fields:
        raise SourceFailed("source_garbage", "not one MARC record")
    return Candidate(target=target.name, record=marc_record.unpack(marc_record.pack(read[0], target.syntax)),
                     syntax=target.syntax, raw=raw)


def _failure(lib: ctypes.CDLL, connection: int) -> SourceFailed | None:
    """The connection's error as our reason: ZOOM's own codes by kind; a diagnostic in the
    target's own Z39.50 set (Bib-1: unsupported attribute, no such database, ...) is a refusal
    with its words; anything else (an HTTP status: a web server at that port) is garbage."""
    message, info, diagset = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
    code = lib.ZOOM_connection_error_x(connection, ctypes.byref(message), ctypes.byref(info), ctypes.byref(diagset))
    if not code:
        return None
    detail = " ".join(part.decode("utf-8", "replace") for part in (message.value, info.value) if part)
    kind = (diagset.value or b"").decode("ascii", "replace")
    if kind == "ZOOM":
        reason = _REASONS.get(code, "source_failed")
    elif kind.casefold() in ("bib-1", "info:srw/diagnostic/1"):
        reason = "source_refused"
    else:
        reason = "source_garbage"
    return SourceFailed(reason, f"{code} {detail}".strip())


def term_bytes(question: str, target: Target) -> bytes:
    """The query as the target reads its terms: a GBK server (most Chinese ones) takes GBK bytes;
    a MARC-8 target is asked in UTF-8, which is what ZOOM sends by default (and ISBNs are ASCII)."""
    try:
        return question.encode("gb18030" if target.charset == "gb18030" else "utf-8")
    except UnicodeEncodeError:
        raise SourceFailed("source_query_charset") from None


def _ask(target: Target, question: bytes, limit: int) -> list[bytes]:
    """Blocking: connect, search, fetch up to `limit` raw records (run in a worker thread)."""
    lib = zoom()
    options = lib.ZOOM_options_create()
    connection = result = None
    try:
        for key, value in (("preferredRecordSyntax", RECORD_SYNTAX.get(target.syntax, "usmarc")),
                           ("databaseName", target.database),
                           ("timeout", str(max(1, math.ceil(target.timeout_seconds)))),
                           ("count", str(limit)), ("presentChunk", str(limit)),
                           ("user", target.username or None), ("password", target.password or None)):
            if value:
                lib.ZOOM_options_set(options, key.encode(), value.encode())
        connection = lib.ZOOM_connection_create(options)
        lib.ZOOM_connection_connect(connection, target.host.encode("idna"), target.port)
        failed = _failure(lib, connection)
        if failed:
            raise failed
        result = lib.ZOOM_connection_search_pqf(connection, question)
        failed = _failure(lib, connection)
        if failed:
            raise failed
        records = []
        for position in range(min(lib.ZOOM_resultset_size(result), limit)):
            record = lib.ZOOM_resultset_record(result, position)
            failed = _failure(lib, connection)
            if failed:
                raise failed
            if not record:
                continue
            length = ctypes.c_int(0)
            data = lib.ZOOM_record_get(record, b"raw", ctypes.byref(length))
            if data and length.value > 0:
                records.append(ctypes.string_at(data, length.value))
        return records
    finally:
        if result:
            lib.ZOOM_resultset_destroy(result)
        if connection:
            lib.ZOOM_connection_destroy(connection)
        lib.ZOOM_options_destroy(options)


async def search(target: Target, query: SourceQuery, *, limit: int = 10) -> list[Candidate]:
    """The target's records for the query, or SourceFailed (unreachable, timeout, refused, garbage)."""
    if not available():
        raise SourceFailed("source_unavailable", "libyaz5 is not installed")
    question = term_bytes(pqf(query), target)
    try:
        asked = asyncio.get_running_loop().run_in_executor(_THREADS, _ask, target, question, limit)
        raws = await asyncio.wait_for(asked, target.timeout_seconds)
    except TimeoutError:
        raise SourceFailed("source_timeout", f"no answer within {target.timeout_seconds:g} s") from None
    return [decode(raw, target) for raw in raws]
