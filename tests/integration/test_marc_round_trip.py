"""A record that comes in leaves exactly as it came: round trips through the catalogue, field
by field, on both engines, with records that use every tag of MARC21 and CNMARC
(tests/marc_specimens.py), in the character sets other systems send (UTF-8, MARC-8, GBK).

The adversary here is ordinary: a vendor's file full of fields this catalogue never shows (LC
call numbers, contents notes, 880 linked 汉字 titles, CNMARC coded data), which a crosswalk
would quietly drop.
"""

import datetime as dt
import io
import unicodedata

import pymarc
import pytest

from library.catalog import marc, service
from library.catalog.batches import import_marc
from library.catalog.marc_record import pack, unpack
from library.catalog.export import export_marc
from library.catalog.records import RecordInput
from library.catalog.tables import Record
from library.demo import load_demo
from tests.marc_specimens import CNMARC_TAGS, MARC21_TAGS, cnmarc_specimen, marc21_specimen

TODAY = dt.date(2026, 12, 7)
HOLDINGS = {"marc21": "952", "cnmarc": "905"}


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def exported(fmt: str, encoding: str = "utf-8") -> bytes:
    return b"".join([chunk async for chunk in export_marc(fmt, encoding=encoding)])


def fields_of(record: pymarc.Record, skip: tuple[str, ...] = ()) -> list[tuple]:
    """A record's fields as comparable values (NFC: MARC-8 decodes to combining sequences)."""
    shown = []
    for f in record.fields:
        if f.tag in skip:
            continue
        if f.control_field:
            shown.append((f.tag, unicodedata.normalize("NFC", f.data)))
        else:
            shown.append((f.tag, "".join(f.indicators), tuple(
                (s.code, unicodedata.normalize("NFC", s.value)) for s in f.subfields)))
    return shown


def read_back(data: bytes, encoding: str = "utf-8") -> list[pymarc.Record]:
    records = []
    for position, record, reason in marc.read_marc(data, encoding=encoding):
        assert record is not None, f"record {position} of our own export is unreadable: {reason}"
        records.append(record if isinstance(record, pymarc.Record) else _pymarc(record))
    return records


def _pymarc(light) -> pymarc.Record:
    return unpack(pack(light, ""))


def by_control_number(records: list[pymarc.Record]) -> dict[str, pymarc.Record]:
    return {record["001"].data: record for record in records}


def holdings_of(record: pymarc.Record, tag: str) -> list[dict]:
    return sorted(({s.code: s.value for s in f.subfields} for f in record.get_fields(tag)), key=lambda h: h.get("p", h.get("b")))


async def test_marc21_every_tag_comes_back_as_it_came(demo):
    """MARC21 -> us -> MARC21 (and MARCXML): every field, indicator and subfield, in order."""
    sent = [marc21_specimen(n, holdings=[{"a": "ZX", "b": "ZX", "p": f"ZX7{n:05d}", "y": "picture_book",
                                          "s": "available"}]) for n in range(1, 13)]
    report = await import_marc(b"".join(r.as_marc() for r in sent), "test", TODAY)
    assert report.read == 12 and not report.skipped
    back = by_control_number(read_back(await exported("marc21")))
    assert len(back) == 12
    for original in sent:
        returned = back[original["001"].data]
        assert fields_of(returned, ("952",)) == fields_of(original, ("952",))
        assert {f.tag for f in returned.fields} >= set(MARC21_TAGS)
        assert [h["p"] for h in holdings_of(returned, "952")] == [original["952"]["p"]]
    xml = pymarc.parse_xml_to_array(io.BytesIO(await exported("marcxml")))
    xml_back = by_control_number(xml)
    for original in sent:
        assert fields_of(xml_back[original["001"].data], ("952",)) == fields_of(original, ("952",))


async def test_the_880_chinese_title_is_kept_and_found(demo):
    """LC records of Chinese books carry the 汉字 title only in 880."""
    await import_marc(marc21_specimen(7).as_marc(), "test", TODAY)
    back = read_back(await exported("marc21"))[0]
    assert back["880"]["a"] == "好饿的毛毛虫 7 /"


async def test_cnmarc_every_tag_comes_back_as_it_came(demo):
    """CNMARC -> us -> CNMARC, UTF-8."""
    sent = [cnmarc_specimen(n, holdings=[{"a": "ZX", "b": f"ZX8{n:05d}", "c": "邻乐空间", "d": "I712.85/K12"}])
            for n in range(1, 9)]
    report = await import_marc(b"".join(r.as_marc() for r in sent), "test", TODAY)
    assert report.read == 8 and not report.skipped
    back = by_control_number(read_back(await exported("cnmarc")))
    assert len(back) == 8
    for original in sent:
        returned = back[original["001"].data]
        assert fields_of(returned, ("905",)) == fields_of(original, ("905",))
        assert {f.tag for f in returned.fields} >= set(CNMARC_TAGS) - {"905"}
        assert [h["b"] for h in holdings_of(returned, "905")] == [original["905"]["b"]]


async def test_a_vendors_gbk_cnmarc_file_comes_back_in_gb18030(demo):
    """A CALIS-style file in GBK/GB18030 (no UTF-8 anywhere) in, GB18030 out, field by field."""
    sent = [cnmarc_specimen(n) for n in range(20, 24)]
    data = marc.write_iso2709(sent, "gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    report = await import_marc(data, "test", TODAY, encoding="auto")
    assert report.read == 4 and not report.skipped
    titles = sorted(row["title"] for row in await Record.select(Record.title))
    assert titles[0].startswith("The very hungry caterpillar 2")  # NSB/NSE gone from the column
    out = await exported("cnmarc", encoding="gb18030")
    back = by_control_number(read_back(out, encoding="gb18030"))
    for original in sent:
        # 100 $a/26-29 names the character set: the writer says what it wrote.
        skip = ("100",)
        assert fields_of(back[original["001"].data], skip) == fields_of(original, skip)


async def test_marc8_comes_in_and_goes_out_as_the_same_letters(demo):
    """A system that still writes MARC-8: combining diacritics before their letter."""
    # leader/09 blank: MARC-8 (to_unicode=False, or pymarc would write it as UTF-8 and say so)
    record = pymarc.Record(leader="00000nam  2200000 a 4500", to_unicode=False)
    record.add_field(pymarc.Field(tag="001", data="m8-0001"))
    record.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"),
                                  subfields=[pymarc.Subfield("a", "Espa\xe4na y M\xe2exico /")]))  # MARC-8 tilde, acute
    record.add_field(pymarc.Field(tag="500", indicators=pymarc.Indicators(" ", " "),
                                  subfields=[pymarc.Subfield("a", "Na\xe8ive notes.")]))  # umlaut
    data = record.as_marc()
    assert b"\xe4n" in data  # really MARC-8 bytes
    await import_marc(data, "test", TODAY)
    row = await Record.select(Record.title).first()
    assert unicodedata.normalize("NFC", row["title"]) == "España y México"
    back = read_back(await exported("marc21"))[0]
    assert unicodedata.normalize("NFC", back["245"]["a"]) == "España y México /"
    assert unicodedata.normalize("NFC", back["500"]["a"]) == "Naïve notes."
    assert back.leader[9] == "a"  # written as UTF-8, and says so


async def test_a_local_edit_changes_its_own_fields_and_nothing_else(demo):
    """A librarian corrects the title: 245 goes out corrected, every other field as it came."""
    original = marc21_specimen(3)
    await import_marc(original.as_marc(), "test", TODAY)
    uuid = str((await Record.select(Record.uuid).first())["uuid"])
    record = await service.record_detail(uuid)
    data = RecordInput(**{key: record[key] for key in (
        "title", "subtitle", "parallel_title", "original_title", "contributors", "publisher", "publication_year",
        "language", "series", "series_number", "subjects", "age_min", "age_max", "format", "pages", "summary",
        "clc", "call_number")}, isbn=record["isbn13"], other_isbns=record["other_isbns"])
    data.title = "The very hungry caterpillar (corrected)"
    await service.update_record(uuid, data, "test", TODAY)
    assert (await service.record_detail(uuid))["local_edits"] == ["title"]
    returned = read_back(await exported("marc21"))[0]
    assert returned["245"]["a"].startswith("The very hungry caterpillar (corrected)")
    title_tags = ("240", "245", "246")
    assert fields_of(returned, title_tags + ("952",)) == fields_of(original, title_tags + ("952",))
    assert returned["001"].data == original["001"].data  # the edit kept the control number


async def test_a_record_catalogued_here_goes_out_from_its_fields(demo):
    uuid = await service.create_record(RecordInput(title="社区自编绘本", isbn="9787533278267", publisher="嘉兴图书馆",
                                                   publication_year=2025), "test", TODAY)
    back = read_back(await exported("marc21"))[0]
    assert back["245"]["a"] == "社区自编绘本" and back["020"]["a"] == "9787533278267"
    cn = read_back(await exported("cnmarc"))[0]
    assert cn["200"]["a"] == "社区自编绘本" and cn["010"]["a"].startswith("978")
    assert uuid
