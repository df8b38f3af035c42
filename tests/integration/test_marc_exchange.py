"""MARC in and out, on both engines, with the files other systems really send."""

import datetime as dt
import io

import pymarc
import pytest
from pymarc import Field, Subfield

from library.catalog import service
from library.catalog.batches import import_marc
from library.catalog.export import export_marc
from library.catalog.service import SearchFilters
from library.catalog.tables import Item, PossibleDuplicate, Record
from library.demo import load_demo
from library.errors import InvalidInput
from tests.marc_samples import cnmarc, iso2709, marc21

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def collect(fmt: str, branch: str | None = None) -> bytes:
    return b"".join([chunk async for chunk in export_marc(fmt, branch)])


async def test_real_world_isbn_shapes(demo):
    data = iso2709(
        marc21("好饿的毛毛虫", isbns=["9787533278267 (精装)", "7533259599"], author="卡尔, 艾瑞"),  # several, qualifier
        marc21("Where the Wild Things Are", isbns=["0060254920 (lib. bdg.)"]),  # ISBN-10 only
        marc21("无 ISBN 的社区自编绘本", control="ZX-LOCAL-0001"),  # no ISBN at all
    )
    report = await import_marc(data, "test", TODAY)
    assert (report.read, report.new, report.matched, report.refused, report.skipped) == (3, 3, 0, 0, [])
    assert report.flavour == "marc21"
    first = (await service.intake("9787533278267"))["record"]
    assert first["title"] == "好饿的毛毛虫" and first["other_isbns"] == ["9787533259594"]
    assert first["publisher"] == "明天出版社" and first["publication_year"] == 2008
    assert first["contributors"] == [{"name": "卡尔, 艾瑞", "role": "author"}]
    assert (await service.intake("0-06-025492-0"))["record"]["title"] == "Where the Wild Things Are"
    assert (await service.intake("9787533259594"))["record"]["uuid"] == first["uuid"]  # found by the other ISBN
    assert (await service.search("社区自编", SearchFilters()))["total"] == 1


async def test_importing_again_matches_by_the_rules_and_never_merges(demo):
    """The same 001 with a new title is the same record (overlaid); the same ISBN with another
    title is not (a publisher's reuse): it is added and flagged, and the copy follows the file."""
    holdings = [{"a": "ZX", "b": "ZX", "p": "ZX900001", "y": "picture_book", "c": "邻乐空间"}]
    first = iso2709(marc21("好饿的毛毛虫", isbns=["9787533278267"], holdings=holdings),
                    marc21("社区绘本", control="LOCAL-2"))
    assert (await import_marc(first, "test", TODAY)).new == 2
    second = iso2709(marc21("好饿的毛毛虫（新版）", isbns=["9787533278267"], holdings=holdings),
                     marc21("社区绘本 第二版", control="LOCAL-2"))
    report = await import_marc(second, "test", TODAY)
    assert (report.read, report.new, report.matched, report.unchanged, report.possible_duplicates) == (2, 1, 1, 0, 1)
    assert (report.copies_new, report.copies_changed) == (0, 1)
    assert await Record.count() == 3 and await Item.count() == 1
    assert (await service.search("第二版", SearchFilters()))["total"] == 1
    [flag] = await PossibleDuplicate.select(PossibleDuplicate.record.title, PossibleDuplicate.other.title,
                                            PossibleDuplicate.reason, PossibleDuplicate.found_by)
    assert (flag["record.title"], flag["other.title"], flag["reason"]) == ("好饿的毛毛虫（新版）", "好饿的毛毛虫", "isbn")
    assert flag["found_by"] == f"import {report.batch}"
    again = await import_marc(second, "test", TODAY)  # the same file again: nothing to write
    assert (again.new, again.matched, again.unchanged, again.copies_changed) == (0, 0, 2, 0)


async def test_a_broken_record_is_skipped_with_its_position_and_the_rest_imports(demo):
    good = iso2709(marc21("第一本", isbns=["9787533278267"]))
    body = b"garbage that is no directory\x1e\x1d"
    broken = f"{24 + len(body):05d}nam a2200037 i 4500".encode() + body  # right length, no directory
    no_title = iso2709(marc21("", isbns=["9787533259594"]))
    last = iso2709(marc21("第四本", control="C4"))
    report = await import_marc(good + broken + no_title + last, "test", TODAY)
    assert (report.read, report.new, report.refused) == (4, 2, 2)
    assert [s.position for s in report.skipped] == [2, 3]
    assert "title" in report.skipped[1].reason
    assert await Record.count() == 2


async def test_a_truncated_file_keeps_what_came_before(demo):
    data = iso2709(marc21("第一本", control="T1"), marc21("第二本", control="T2"))
    report = await import_marc(data[:-40], "test", TODAY)
    assert (report.read, report.new, report.refused) == (2, 1, 1) and report.skipped[0].position == 2


@pytest.mark.parametrize("data", [b"%PDF-1.4 this is a pdf", b"<html><body>not marc</body></html", b"hello"])
async def test_a_file_that_is_not_marc(demo, data):
    with pytest.raises(InvalidInput) as refused:
        await import_marc(data, "test", TODAY)
    assert refused.value.code in ("marc_not_marc", "marc_empty")
    assert await Record.count() == 0


async def test_cnmarc_with_holdings(demo):
    data = iso2709(cnmarc("猜猜我有多爱你", "978-7-5332-5959-4", holdings=[{"a": "JX", "b": "JX0000123", "d": "I561.85/M"}]))
    report = await import_marc(data, "test", TODAY)
    assert report.flavour == "cnmarc" and report.created == 1 and report.items_created == 1
    record = (await service.intake("9787533259594"))["record"]
    assert (record["title"], record["parallel_title"], record["clc"]) == (
        "猜猜我有多爱你", "Guess how much I love you", "I561.85")
    assert (record["age_min"], record["age_max"], record["pages"], record["publication_year"]) == (3, 6, 32, 2013)
    assert {c["role"] for c in record["contributors"]} == {"author", "translator"}
    assert [(h["branch"], h["copies"]) for h in record["holdings"]] == [("JX", 1)]
    assert record["items"][0]["price_cents"] == 2980


async def test_marc8_is_read(demo):
    record = marc21("Cafe\u0301 stories", control="M8")  # an e with a combining acute accent
    record.leader = record.leader[:9] + " " + record.leader[10:]  # MARC-8
    record.force_utf8 = False
    buffer = io.BytesIO()
    pymarc.MARCWriter(buffer).write(record)
    report = await import_marc(buffer.getvalue(), "test", TODAY)
    assert report.created == 1, report.skipped
    title = (await Record.select(Record.title).first())["title"]
    assert title.startswith("Caf") and "stories" in title


async def test_export_round_trip_marc21_and_marcxml(demo):
    holdings = [{"a": "ZX", "b": "ZX", "p": "ZX900001", "y": "picture_book", "c": "邻乐空间", "g": "35.80",
                 "d": "2026-03-01"}]
    extra = [Field(tag="521", indicators=["1", " "], subfields=[Subfield("a", "2-6")]),
             Field(tag="650", indicators=[" ", "4"], subfields=[Subfield("a", "昆虫")])]
    await import_marc(iso2709(marc21("好饿的毛毛虫", isbns=["9787533278267"], author="艾瑞·卡尔", holdings=holdings,
                                     extra=extra), marc21("社区绘本", control="LOCAL-2")), "test", TODAY)
    exported = await collect("marc21")
    records = list(pymarc.MARCReader(exported, to_unicode=True, force_utf8=True))
    assert len(records) == 2
    assert b"".join(record.as_marc() for record in records) == exported  # pymarc reads it back unchanged
    xml = await collect("marcxml")
    from_xml = pymarc.parse_xml_to_array(io.BytesIO(xml))
    assert [r.as_marc() for r in from_xml] == [r.as_marc() for r in records]
    caterpillar = next(r for r in records if r.get_fields("020"))
    assert caterpillar["952"]["p"] == "ZX900001" and caterpillar["952"]["g"] == "35.80"
    # Importing our own export duplicates nothing, and the catalogue exports the same again.
    report = await import_marc(exported, "test", TODAY)
    assert (report.new, report.matched + report.unchanged, report.copies_new, report.copies_changed) == (0, 2, 0, 0)
    assert await collect("marc21") == exported
    again = await import_marc(exported, "test", TODAY)
    assert (again.new, again.matched, again.unchanged) == (0, 0, 2)


async def test_export_one_branch(demo):
    await import_marc(iso2709(
        marc21("在振兴", control="A", holdings=[{"a": "ZX", "b": "ZX", "p": "ZXA1", "y": "book"}]),
        marc21("在总馆", control="B", holdings=[{"a": "JX", "b": "JX", "p": "JXB1", "y": "book"}])), "test", TODAY)
    records = list(pymarc.MARCReader(await collect("marc21", "ZX"), to_unicode=True, force_utf8=True))
    assert [r["245"]["a"] for r in records] == ["在振兴 /"]  # as it came in, ISBD punctuation and all


async def test_a_big_file_is_converted_in_a_worker_process_with_the_same_result(demo, monkeypatch):
    from library.catalog import converters

    records = [marc21(f"第{n}本", control=f"W{n}", holdings=[{"a": "ZX", "b": "ZX", "p": f"W{n}", "y": "book"}])
               for n in range(1, 8)]
    records.insert(3, marc21("", control="NOTITLE"))
    data = iso2709(*records)
    monkeypatch.setattr(converters, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(converters, "CHUNK_RECORDS", 3)
    report = await import_marc(data, "test", TODAY)
    assert (report.read, report.new, report.refused, report.copies_new) == (8, 7, 1, 7)
    assert [(s.position, "title" in s.reason) for s in report.skipped] == [(4, True)]
    assert (await service.search("第5本", SearchFilters()))["total"] == 1


async def test_a_librarian_sends_unplaced_copies_only_to_her_branch(demo):
    from library.accounts.principal import Principal
    from library.branches.tables import Branch

    zx = (await Branch.select(Branch.id).where(Branch.code == "ZX").first())["id"]
    librarian = Principal(kind="staff", id=1, uuid="s", name="馆员", language="zh_CN", role="librarian",
                          branch_ids=frozenset([zx]))
    data = iso2709(marc21("无馆藏地", control="U1", holdings=[{"p": "U0001", "y": "book"}]))
    with pytest.raises(InvalidInput) as refused:
        await import_marc(data, "test", TODAY, default_branch="JX", imported_by=librarian)
    assert refused.value.field == "branch" and await Record.count() == 0
    report = await import_marc(data, "test", TODAY, default_branch="ZX", imported_by=librarian)
    assert report.items_created == 1
