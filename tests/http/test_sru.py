"""/sru, our catalogue as an SRU server (library.catalog.sru), as a copying library's client sees
it: CQL by ISBN in either form, title, author, subject and anywhere; booleans; MARCXML that is
the record as it came in; Dublin Core; paging; and for every query the server cannot answer, a
diagnostic of the SRU standard in a 200 XML answer, never an error page. The adversary: a
client (or anyone with a browser) sending hostile CQL."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ElementTree

import pytest
from pymarc import Field, Subfield

from library.catalog.batches import import_marc
from library.catalog.isbn import parse_isbn
from library.catalog.sru import MAX_QUERY_CHARACTERS, MAXIMUM_RECORDS
from tests.marc_samples import cnmarc, iso2709, marc21

TODAY = dt.date(2026, 11, 28)
SRW = "{http://www.loc.gov/zing/srw/}"
SRU2 = "{http://docs.oasis-open.org/ns/search-ws/sruResponse}"
DIAG = "{http://www.loc.gov/zing/srw/diagnostic/}"
MARC = "{http://www.loc.gov/MARC21/slim}"
DC = "{http://purl.org/dc/elements/1.1/}"

CATERPILLAR = "9787533278267"
CATERPILLAR_10 = parse_isbn(CATERPILLAR).isbn10
GUESS = "9787533259594"


def subject(text: str) -> Field:
    return Field(tag="650", indicators=[" ", "0"], subfields=[Subfield("a", text)])


def note(text: str) -> Field:
    return Field(tag="590", indicators=[" ", " "], subfields=[Subfield("a", text)])


@pytest.fixture
async def catalogue(client):
    """Picture books as other systems send them: Chinese titles (one in traditional characters),
    English ones, one CNMARC record, a local note that only the kept record has, and copies
    whose holdings must not leave the building."""
    holdings = [{"a": "ZX", "b": "ZX", "p": "ZX900001", "y": "picture_book", "c": "邻乐空间"}]
    data = iso2709(
        marc21("好饿的毛毛虫", isbns=[CATERPILLAR], author="卡尔, 艾瑞", holdings=holdings,
               extra=[subject("图画故事"), note("本地附注：社区捐赠")]),
        marc21("猜猜我有多愛你", isbns=["9787533260002"], author="麦克布雷尼, 山姆", extra=[subject("親情")]),
        marc21("The Very Hungry Caterpillar", isbns=["9780399226908"], author="Carle, Eric",
               extra=[subject("Caterpillars")]),
        marc21("Where the Wild Things Are", isbns=["9780060254926"], author="Sendak, Maurice",
               extra=[subject("Monsters")]),
        marc21('The "And" Or Not Book', control="LOCAL-QUOTES", author="Carle, Eric"),
    )
    report = await import_marc(data, "test", TODAY)
    assert report.new == 5, report
    assert (await import_marc(iso2709(cnmarc("猜猜我有多爱你", GUESS)), "test", TODAY)).new == 1
    return client


async def sru(client, **params) -> ElementTree.Element:
    params.setdefault("version", "1.2")
    params.setdefault("operation", "searchRetrieve")
    response = await client.get("/sru", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert "set-cookie" not in response.headers  # no session, no CSRF token: a protocol, not a page
    return ElementTree.fromstring(response.content)


def total(root: ElementTree.Element, ns: str = SRW) -> int:
    return int(root.findtext(f"{ns}numberOfRecords"))


def titles(root: ElementTree.Element) -> list[str]:
    found = []
    for record in root.iter(f"{MARC}record"):
        for datafield in record.iter(f"{MARC}datafield"):
            if datafield.get("tag") in ("245", "200"):
                found.append(datafield.findtext(f"{MARC}subfield").rstrip(" /"))
    return found


def diagnostics(root: ElementTree.Element, ns: str = DIAG) -> list[str]:
    return [uri.rpartition("/")[2] for uri in (element.text for element in root.iter(f"{ns}uri"))]


async def test_by_isbn_in_either_form_exactly(catalogue):
    for isbn in (CATERPILLAR, CATERPILLAR_10, "978-7-5332-7826-7"):
        root = await sru(catalogue, query=f"bath.isbn = {isbn}")
        assert (total(root), titles(root)) == (1, ["好饿的毛毛虫"]), isbn
    # Part of an ISBN is not an ISBN: no prefix search through the isbn index.
    assert total(await sru(catalogue, query="isbn = 978753327")) == 0
    both = await sru(catalogue, query=f'isbn any "{CATERPILLAR} 9780060254926"')
    assert sorted(titles(both)) == ["Where the Wild Things Are", "好饿的毛毛虫"]


async def test_chinese_text_in_either_script_and_kept_as_written(catalogue):
    """Searched in simplified characters, the traditional title is found, and comes out as it was
    catalogued (愛, not 爱); searched in traditional characters, the simplified one is found."""
    root = await sru(catalogue, query='dc.title = "猜猜我有多爱你"')
    assert sorted(titles(root)) == sorted(["猜猜我有多爱你", "猜猜我有多愛你"])
    root = await sru(catalogue, query="title = 好餓的毛毛蟲")
    assert titles(root) == ["好饿的毛毛虫"]
    root = await sru(catalogue, query="subject = 亲情")
    assert titles(root) == ["猜猜我有多愛你"]


async def test_indexes_booleans_and_relations(catalogue):
    async def found(query: str) -> list[str]:
        return sorted(titles(await sru(catalogue, query=query, maximumRecords="50")))

    assert await found("author = carle") == ["The \"And\" Or Not Book", "The Very Hungry Caterpillar"]
    assert await found('dc.creator = "Carle" and title = caterpillar') == ["The Very Hungry Caterpillar"]
    assert await found("author = carle not title = caterpillar") == ['The "And" Or Not Book']
    assert await found("title = caterpillar or subject = monsters") == ["The Very Hungry Caterpillar",
                                                                        "Where the Wild Things Are"]
    assert await found("(title = wild or title = hungry) and author = sendak") == ["Where the Wild Things Are"]
    assert await found("毛毛虫") == ["好饿的毛毛虫"]  # cql.serverChoice: anywhere
    assert await found('cql.serverChoice all "carle hungry"') == ["The Very Hungry Caterpillar"]
    assert await found('title any "wild hungry"') == ["The Very Hungry Caterpillar", "Where the Wild Things Are"]
    assert await found('title = "wild things"') == ["Where the Wild Things Are"]  # a phrase: in this order
    assert await found('title = "things wild"') == []
    # A title with quotes and CQL's keywords in it, asked for in quotes, is words like any other.
    assert await found(r'title = "\"And\" Or Not"') == ['The "And" Or Not Book']
    assert await found("cql.allRecords = 1 not title = caterpillar") == sorted(
        ['The "And" Or Not Book', "Where the Wild Things Are", "猜猜我有多爱你", "猜猜我有多愛你", "好饿的毛毛虫"])
    assert await found('>dc="info:srw/cql-context-set/1/dc-v1.1" dc.title = wild') == ["Where the Wild Things Are"]


async def test_marcxml_is_the_record_as_it_came_without_our_copies(catalogue):
    root = await sru(catalogue, query=f"isbn = {CATERPILLAR}")
    assert root.findtext(f"{SRW}records/{SRW}record/{SRW}recordSchema") == "info:srw/schema/1/marcxml-v1.1"
    record = root.find(f".//{MARC}record")
    tags = [field.get("tag") for field in record if field.get("tag")]
    notes = [s.text for f in record.iter(f"{MARC}datafield") if f.get("tag") == "590" for s in f]
    assert notes == ["本地附注：社区捐赠"]  # a field no column holds: kept whole
    assert "952" not in tags  # our copies' barcodes are not another library's business
    assert record.findtext(f"{MARC}leader")


async def test_unimarc_and_dublin_core(catalogue):
    root = await sru(catalogue, query=f"isbn = {GUESS}", recordSchema="unimarc")
    record = root.find(f".//{MARC}record")
    assert [f.get("tag") for f in record.iter(f"{MARC}datafield")][:2] == ["010", "101"]
    assert titles(root) == ["猜猜我有多爱你"]
    root = await sru(catalogue, query=f"isbn = {CATERPILLAR}", recordSchema="dc")
    assert root.findtext(f".//{DC}title") == "好饿的毛毛虫"
    assert root.findtext(f".//{DC}creator") == "卡尔, 艾瑞"
    assert root.findtext(f".//{DC}identifier") == f"URN:ISBN:{CATERPILLAR}"


async def test_paging(catalogue):
    first = await sru(catalogue, query="cql.allRecords = 1", maximumRecords="4")
    assert total(first) == 6 and len(titles(first)) == 4
    assert first.findtext(f"{SRW}nextRecordPosition") == "5"
    rest = await sru(catalogue, query="cql.allRecords = 1", startRecord="5", maximumRecords="4")
    assert len(titles(rest)) == 2 and rest.find(f"{SRW}nextRecordPosition") is None
    positions = [int(p.text) for p in rest.iter(f"{SRW}recordPosition")]
    assert positions == [5, 6]
    assert set(titles(first)).isdisjoint(titles(rest))
    counted = await sru(catalogue, query="author = carle", maximumRecords="0")
    assert total(counted) == 2 and titles(counted) == []
    beyond = await sru(catalogue, query="author = carle", startRecord="3")
    assert diagnostics(beyond) == ["61"]
    many = await sru(catalogue, query="cql.allRecords = 1", maximumRecords=str(MAXIMUM_RECORDS + 1))
    assert diagnostics(many) == ["6"] and len(titles(many)) == 6  # capped, said, answered


async def test_explain_and_sru_2(catalogue):
    explain = await sru(catalogue, operation="explain")
    indexes = {name.text for name in explain.iter("{http://explain.z3950.org/dtd/2.0/}name")}
    assert {"title", "creator", "subject", "isbn", "serverChoice"} <= indexes
    assert (await catalogue.get("/sru")).status_code == 200  # no parameters: explain
    root = await sru(catalogue, version="2.0", query="title = wild")
    assert root.tag == f"{SRU2}searchRetrieveResponse" and total(root, SRU2) == 1
    assert root.findtext(f".//{SRU2}recordXMLEscaping") == "xml"
    refused = await sru(catalogue, version="2.0", query="nosuchindex = x")
    assert diagnostics(refused, "{http://docs.oasis-open.org/ns/search-ws/diagnostic}") == ["16"]


async def test_records_as_strings(catalogue):
    root = await sru(catalogue, query=f"isbn = {CATERPILLAR}", recordPacking="string")
    text = root.findtext(f".//{SRW}recordData")
    assert root.find(f".//{MARC}record") is None  # escaped: text, not elements
    assert titles(ElementTree.fromstring(text)) == ["好饿的毛毛虫"]


HOSTILE = [
    ({"query": "nosuchindex = x"}, "16"),
    ({"query": "foo.title = x"}, "15"),
    ({"query": "title < x"}, "19"),
    ({"query": "title within x"}, "19"),
    ({"query": "title =/fuzzy x"}, "20"),
    ({"query": "(title = x"}, "13"),
    ({"query": "title = x)"}, "13"),
    ({"query": ")"}, "13"),
    ({"query": "(" * 200 + "x" + ")" * 200}, "13"),
    ({"query": 'title = "unclosed'}, "14"),
    ({"query": '"'}, "14"),
    ({"query": "title ="}, "10"),
    ({"query": "title = x and"}, "10"),
    ({"query": "and"}, None),  # a word like any other: searched (The "And" Or Not Book)
    ({"query": "= x"}, "10"),
    ({"query": "title = x prox title = y"}, "37"),
    ({"query": "title = x and/distance>1 title = y"}, "46"),
    ({"query": "title = x sortBy title"}, "80"),
    ({"query": 'title = ""'}, "27"),
    ({"query": "title = ***"}, "27"),
    ({"query": "x" * (MAX_QUERY_CHARACTERS + 1)}, "12"),
    ({"query": " or ".join(f"title = w{n}" for n in range(40))}, "38"),
    ({"query": "title any \"" + " ".join(f"w{n}" for n in range(40)) + "\""}, "38"),
    ({"query": "title = x'); DROP TABLE record; --"}, "13"),
    ({"query": "title = \"x'); DROP TABLE record; --\""}, None),
    ({"query": "title = \"x' OR 1=1 --\" or author = \"{}\""}, "27"),
    ({"query": 'title = "a\\" OR \\"b"'}, None),
    ({"query": "title = 毛毛虫 \" NEAR"}, "14"),
    ({"query": "   "}, "7"),
    ({}, "7"),
    ({"query": "x", "version": "9.9"}, "5"),
    ({"query": "x", "operation": "scan"}, "4"),
    ({"query": "x", "startRecord": "0"}, "6"),
    ({"query": "x", "startRecord": "-1"}, "6"),
    ({"query": "x", "startRecord": "99999999999999999999"}, "6"),
    ({"query": "x", "maximumRecords": "ten"}, "6"),
    ({"query": "x", "recordSchema": "mods"}, "66"),
    ({"query": "x", "recordPacking": "json"}, "71"),
    ({"query": "x", "recordXPath": "/record"}, "72"),
    ({"query": "x", "sortKeys": "title"}, "80"),
    ({"query": "x", "stylesheet": "http://evil.example/x.xsl"}, "110"),
]


async def test_hostile_and_broken_queries_get_diagnostics(catalogue):
    """Each answered 200 with the diagnostic it deserves (none: searched, and found nothing), in
    one catalogue: the table is long, and no query may change what the next one finds."""
    for params, diagnostic in HOSTILE:
        root = await sru(catalogue, **params)
        assert diagnostics(root) == ([diagnostic] if diagnostic else []), params
        if diagnostic:
            assert total(root) == 0, params
    assert titles(await sru(catalogue, query="title = wild")) == ["Where the Wild Things Are"]  # still there


async def test_bytes_no_text_holds(client):
    """What never reaches CQL: a NUL is refused by the app's input boundary (a 422 problem, as
    everywhere); bytes that are no UTF-8 are read as the replacement character; a POST is not
    an SRU request here. None of it a 500."""
    assert (await client.get("/sru?version=1.2&operation=searchRetrieve&query=a%00b")).status_code == 422
    broken = await client.get("/sru?version=1.2&operation=searchRetrieve&query=title%3D%FF%FE")
    assert broken.status_code == 200 and ElementTree.fromstring(broken.content).tag == f"{SRW}searchRetrieveResponse"
    assert (await client.post("/sru", content=b"<x/>")).status_code == 405
    assert (await client.head("/sru")).status_code == 200
