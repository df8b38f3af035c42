"""Our /sru asked as other libraries ask it: by our own SRU client (library.catalog.sources.sru)
and by YAZ's yaz-client, against a real server (`library serve` in a child process) whose
catalogue came in through `library catalog import`: Chinese picture books, one title in
traditional characters, one CNMARC record. Chinese text must come back exactly as catalogued.

yaz-client is Debian's `yaz` (scripts/ensure_yaz.sh installs it for `make test`); without it
the yaz-client tests skip, and fail in CI (LIBRARY_REQUIRE_ZEBRA=1).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from library.catalog.isbn import parse_isbn
from library.catalog.sources import sru
from library.catalog.sources.base import SourceFailed, SourceQuery, Target
from tests.marc_samples import cnmarc, iso2709, marc21
from tests.support import node_folder
from tests.sync.nodes import Node
from tests.zebra_server import missing_tool

CATERPILLAR = "9787533278267"
GUESS_TRADITIONAL = "9787533260002"
GUESS_CNMARC = "9787533259594"


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with node_folder("sru") as (data_dir, url):
        served = Node("sru", data_dir, url)
        try:
            served.library("migrate")
            books = data_dir / "books.mrc"
            books.write_bytes(iso2709(
                marc21("好饿的毛毛虫", isbns=[CATERPILLAR], author="卡尔, 艾瑞"),
                marc21("猜猜我有多愛你", isbns=[GUESS_TRADITIONAL], author="麦克布雷尼, 山姆"),
                marc21('The "And" Book: or, Not', isbns=["9780060254926"], author="Sendak, Maurice"),
            ))
            served.library("catalog", "import", str(books))
            (data_dir / "cnmarc.mrc").write_bytes(iso2709(cnmarc("猜猜我有多爱你", GUESS_CNMARC)))
            served.library("catalog", "import", str(data_dir / "cnmarc.mrc"), "--format", "cnmarc")
            served.start(timeout=90)
            yield served
        finally:
            served.stop()


def target(node: Node, **changes) -> Target:
    values = {"name": "本馆 SRU", "protocol": "sru", "host": "127.0.0.1", "port": node.port, "database": "sru",
              "timeout_seconds": 20.0, **changes}
    return Target(**values)


def title_of(candidate) -> str:
    tag = "200" if candidate.syntax == "unimarc" else "245"
    return candidate.record.get_fields(tag)[0].get_subfields("a")[0].rstrip(" /")


def test_our_client_finds_by_either_isbn_and_keeps_chinese_intact(node):
    for isbn in (CATERPILLAR, parse_isbn(CATERPILLAR).isbn10):
        found = asyncio.run(sru.search(target(node), SourceQuery(isbn=isbn)))
        assert [title_of(c) for c in found] == ["好饿的毛毛虫"], isbn
        assert found[0].target == "本馆 SRU" and found[0].syntax == "marc21"
        assert "好饿的毛毛虫".encode() in found[0].raw  # the MARCXML as sent, kept as provenance
    author = found[0].record.get_fields("100")[0].get_subfields("a")[0]
    assert author == "卡尔, 艾瑞,"
    # Taken on the intake page, the candidate is read again from its raw MARCXML: the same record.
    again = sru.decode(found[0].raw, target(node))
    assert again.record.as_marc() == found[0].record.as_marc() and again.raw == found[0].raw


def test_our_client_by_title_author_in_either_script(node):
    found = asyncio.run(sru.search(target(node), SourceQuery(title="猜猜我有多爱你")))
    assert sorted(title_of(c) for c in found) == sorted(["猜猜我有多愛你", "猜猜我有多爱你"])
    found = asyncio.run(sru.search(target(node), SourceQuery(title="好餓的毛毛蟲", author="卡尔")))
    assert [title_of(c) for c in found] == ["好饿的毛毛虫"]
    # A title with quotes, a colon and CQL's own words: asked for as words, found.
    found = asyncio.run(sru.search(target(node), SourceQuery(title='The "And" Book: or, Not')))
    assert [title_of(c) for c in found] == ['The "And" Book: or, Not']
    assert asyncio.run(sru.search(target(node), SourceQuery(title="没有这本书"))) == []


def test_a_unimarc_target_gets_cnmarc(node):
    found = asyncio.run(sru.search(target(node, syntax="unimarc"), SourceQuery(isbn=GUESS_CNMARC)))
    assert [(c.syntax, title_of(c)) for c in found] == [("unimarc", "猜猜我有多爱你")]
    assert found[0].record.get_fields("010")[0].get_subfields("a")[0] == GUESS_CNMARC


def test_our_server_refusing_is_source_refused(node):
    """A database path that is not an SRU server: refused, with what the server said."""
    with pytest.raises(SourceFailed) as refused:
        asyncio.run(sru.search(target(node, database="nosuch"), SourceQuery(isbn=CATERPILLAR)))
    assert refused.value.reason == "source_refused" and "404" in refused.value.detail


def yaz_client(node: Node, *commands: str) -> str:
    if shutil.which("yaz-client") is None:
        missing_tool("yaz-client is missing: install Debian's yaz (apt-get install yaz; make test does)")
    script = "\n".join(("sru get 1.2", "querytype cql", *commands, "quit")) + "\n"
    done = subprocess.run(["yaz-client", f"{node.url}/sru"], input=script.encode(), capture_output=True,
                          timeout=60)
    return done.stdout.decode("utf-8", "replace")


def test_yaz_client_finds_and_reads_chinese(node):
    said = yaz_client(node, "schema marcxml", "find dc.title = 猜猜我有多爱你", "show 1+2")
    assert "Number of hits: 2" in said, said
    assert "猜猜我有多愛你" in said and "猜猜我有多爱你" in said, said
    said = yaz_client(node, f"find bath.isbn = {parse_isbn(CATERPILLAR).isbn10}", "show 1")
    assert "Number of hits: 1" in said and "好饿的毛毛虫" in said, said
    said = yaz_client(node, "schema info:srw/schema/1/dc-v1.1", "find author = 卡尔", "show 1")
    assert "<dc:title>好饿的毛毛虫</dc:title>" in said, said


def test_yaz_client_is_told_what_is_wrong(node):
    said = yaz_client(node, "find nosuchindex = x", "find (title = x", 'find title = "unclosed')
    for number in ("16", "13", "14"):
        assert f"SRW diagnostic info:srw/diagnostic/1/{number}" in said, said
