"""Staged imports (issue 16, part 5), on both engines: a file is read into a batch first, with
counts that add up exactly and every refused record listed and downloadable as MARC; the
choice per batch for records that match (overlay, add, ignore); then committed, and undone.

The adversaries, each in its own test:

- a vendor file with broken records in the middle (a damaged directory, a run of garbage, a
  record with no title) between good ones, some matching the catalogue, some not;
- a file with 120 refused records: the old import listed only the first 50, and there was no
  way to get the broken records back out of a file to fix them;
- a vendor who re-sends a corrected file after a librarian corrected a title at the desk;
- a vendor who re-sends the same file: nothing may be written, or every branch would download
  the whole catalogue again through sync;
- a librarian who undoes an import after a reader has already borrowed one of its copies (or
  placed a hold, or a colleague corrected a record), and one who clicks Commit or Undo twice;
- a reader who tries the staff's import pages and API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re

import pymarc
import pytest
from pymarc import Field, Subfield

from library.accounts.principal import Principal
from library.app import create_app
from library.branches.tables import AuditEntry
from library.catalog import batches, service
from library.catalog.records import RecordInput
from library.catalog.tables import ImportBatch, ImportBatchRecord, Item, Record
from library.clock import now_utc
from library.demo import load_demo
from library.errors import Conflict
from library.loans import service as loans
from library.loans.tables import Hold, Loan
from library.settings import load_settings
from library.sync.tables import SyncChange
from tests.marc_samples import iso2709, marc21
from tests.marc_specimens import cnmarc_specimen, marc21_specimen
from tests.support import client_for, form_token, sign_in_patron, sign_in_staff

TODAY = dt.date(2026, 11, 28)
DESK = Principal(kind="staff", id=0, uuid="test-desk", name="测试馆员", language="zh_CN", role="administrator",
                 all_branches=True)
COUNTED = ("read", "new", "matched", "unchanged", "ignored", "refused", "with_warnings", "possible_duplicates",
           "copies_new", "copies_changed")


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


@pytest.fixture
async def client(demo):
    async with client_for(create_app(load_settings())) as client:
        yield client


# --- records as vendors send them ------------------------------------------------------------------


def summary(text: str) -> Field:
    return Field(tag="520", indicators=[" ", " "], subfields=[Subfield("a", text)])


def copy(barcode: str, branch: str = "ZX", shelf: str = "") -> dict[str, str]:
    holding = {"a": branch, "b": branch, "p": barcode, "y": "picture_book"}
    if shelf:
        holding["c"] = shelf
    return holding


def book(n: int, title: str, *, note: str = "", holdings: list[dict] = ()) -> pymarc.Record:
    """Vendor record n: its own 001 and ISBN; `note` (a 520 summary) is what a corrected file changes."""
    return marc21(title, control=f"V-{n:03d}", isbns=[isbn(n)], author="卡尔，艾瑞",
                  extra=[summary(note)] if note else [], holdings=holdings)


def isbn(n: int) -> str:
    body = f"9787{n:08d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def untitled(n: int) -> pymarc.Record:
    """A record a catalogue refuses: nothing anywhere that could be its title."""
    record = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
    record.add_field(Field(tag="001", data=f"NT-{n:03d}"))
    record.add_field(Field(tag="020", indicators=[" ", " "], subfields=[Subfield("a", isbn(5000 + n))]))
    record.add_field(Field(tag="264", indicators=[" ", "1"], subfields=[Subfield("b", "明天出版社,"),
                                                                         Subfield("c", "2019.")]))
    return record


def fixed(record: pymarc.Record) -> pymarc.Record:
    """What the cataloguer does with a refused record in a MARC editor: gives it its title."""
    record.add_field(Field(tag="245", indicators=["1", "0"],
                           subfields=[Subfield("a", f"补录绘本 {record['001'].data} /")]))
    return record


def damaged_directory(record: pymarc.Record) -> bytes:
    """A record whose leader's base address is not a number: unreadable, its length still right."""
    data = bytearray(record.as_marc())
    data[12:17] = b"zzzzz"
    return bytes(data)


def pages_out_of_range(record: pymarc.Record) -> pymarc.Record:
    record.add_field(Field(tag="300", indicators=[" ", " "], subfields=[Subfield("a", "99999 pages")]))
    return record


# --- looking at the database -------------------------------------------------------------------------


async def stage(data: bytes, file_name: str = "vendor.mrc", **options) -> tuple[str, batches.ImportCounts]:
    batch = await batches.new_batch(io.BytesIO(data), file_name, "librarian", **options)
    return batch, await batches.stage(batch, TODAY)


def counts_of(counts) -> dict[str, int]:
    if isinstance(counts, dict):
        return {key: counts[key] for key in COUNTED}
    return {key: getattr(counts, key) for key in COUNTED}


def add_up(counts: dict[str, int]) -> bool:
    return counts["read"] == counts["new"] + counts["matched"] + counts["unchanged"] + counts["ignored"] + \
        counts["refused"]


async def change_log() -> int:
    return await SyncChange.count()


async def record(control: str) -> dict:
    return await Record.select().where(Record.control_number == control).first()


async def records_by(control: str) -> list[dict]:
    return await Record.select().where(Record.control_number == control).order_by(Record.id)


async def item(barcode: str) -> dict | None:
    return await Item.select().where(Item.barcode == barcode).first()


async def edit_title(uuid: str, title: str) -> None:
    """A librarian corrects a title at the desk (the record form: every other value as it is)."""
    shown = await service.record_detail(uuid)
    data = RecordInput(**{key: shown[key] for key in (
        "subtitle", "parallel_title", "original_title", "contributors", "publisher", "publication_year",
        "language", "series", "series_number", "subjects", "age_min", "age_max", "format", "pages", "summary",
        "clc", "call_number")}, title=title, isbn=shown["isbn13"], other_isbns=shown["other_isbns"])
    await service.update_record(uuid, data, "librarian", TODAY)


def shown_counts(html: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r'data-count="(\w+)">(\d+)', html)}


# --- 1. the counts add up; staging writes nothing ----------------------------------------------------


async def test_a_vendor_file_with_broken_records_in_the_middle_is_counted_exactly(demo):
    """Three records catalogued from the vendor's last file; its next file has them again (one
    corrected), three new ones, and three broken records in the middle. Every record read has
    one outcome; staging forecasts what committing does, writes nothing to the catalogue and
    nothing to the sync log; the good records after the broken ones all come in."""
    first = await batches.import_marc(iso2709(book(1, "好饿的毛毛虫", holdings=[copy("VZX0001")]),
                                              book(2, "猜猜我有多爱你"), book(3, "大卫，不可以")), "librarian", TODAY)
    assert (first.new, first.refused, first.copies_new) == (3, 0, 1)
    before_stage = (await Record.count(), await Item.count(), await change_log())
    corrected_before = await record("V-002")

    data = b"".join([
        book(1, "好饿的毛毛虫", holdings=[copy("VZX0001")]).as_marc(),  # 1: as before: unchanged
        book(2, "猜猜我有多爱你", note="小兔子和大兔子比赛谁的爱更多。").as_marc(),  # 2: corrected: matched
        damaged_directory(book(10, "坏了的记录")),  # 3: refused, unreadable
        book(11, "团圆", holdings=[copy("VZX0011")]).as_marc(),  # 4: new, with a copy
        untitled(1).as_marc(),  # 5: refused, no title
        b"\x00\x00 GARBAGE FROM THE VENDOR'S FTP SERVER \x1d",  # 6: refused, not a record at all
        pages_out_of_range(book(12, "安的种子")).as_marc(),  # 7: new, with a warning
        book(3, "大卫，不可以").as_marc(),  # 8: unchanged
        book(13, "逃家小兔", holdings=[copy("VZX0013")]).as_marc(),  # 9: new, after all the damage
    ])
    batch, staged = await stage(data)
    expected = {"read": 9, "new": 3, "matched": 1, "unchanged": 2, "ignored": 0, "refused": 3, "with_warnings": 1,
                "possible_duplicates": 0, "copies_new": 2, "copies_changed": 0}
    assert counts_of(staged) == expected and add_up(expected)
    detail = await batches.batch_detail(batch)
    assert detail["status"] == "staged" and counts_of(detail["counts"]) == expected
    # Staging wrote nothing: no record, no copy, no change for the branches to download.
    assert (await Record.count(), await Item.count(), await change_log()) == before_stage
    assert (await record("V-002"))["summary"] == corrected_before["summary"] == ""
    # Every refused record listed, where it was and why; the match is named.
    refused = (await batches.batch_records(batch, "refused"))["records"]
    assert [r["position"] for r in refused] == [3, 5, 6]
    assert refused[1]["control_number"] == "NT-001" and refused[1]["reason"]
    assert all(r["reason"] for r in refused)
    matched = (await batches.batch_records(batch, "matched"))["records"]
    assert [(r["position"], r["record"]) for r in matched] == [(2, str(corrected_before["uuid"]))]
    warned = (await batches.batch_records(batch, "warnings"))["records"]
    assert [r["position"] for r in warned] == [7] and "99999" in warned[0]["warnings"][0]["text"]

    committed = await batches.commit(batch, "librarian", TODAY)
    assert counts_of(committed) == expected
    assert (await batches.batch_detail(batch))["status"] == "committed"
    assert await Record.count() == before_stage[0] + 3
    assert await Item.count() == before_stage[1] + 2
    assert {(await record(f"V-{n:03d}"))["title"] for n in (11, 12, 13)} == {"团圆", "安的种子", "逃家小兔"}
    assert (await item("VZX0013"))["record"] == (await record("V-013"))["id"]
    assert (await record("V-002"))["summary"] == "小兔子和大兔子比赛谁的爱更多。"
    assert (await record("V-012"))["pages"] is None  # the warning's value left empty, the record kept
    assert await record("NT-001") is None and await record("V-010") is None
    # The committed batch still lists its refusals for the download.
    assert (await batches.batch_records(batch, "refused"))["total"] == 3


async def test_a_file_that_is_not_marc_makes_no_batch(demo, tmp_path):
    with pytest.raises(batches.InvalidInput):
        await batches.new_batch(io.BytesIO(b"\xff\xd8\xff\xe0 a photo, not a catalogue"), "photo.jpg", "librarian",
                                directory=tmp_path)
    assert await ImportBatch.count() == 0 and list(tmp_path.glob("*/source")) == []


# --- 2. more than 50 refused records: all listed, all downloadable -------------------------------------


async def test_120_refused_records_are_all_listed_and_download_as_the_bytes_they_came_as(client):
    """The old import listed 50 refusals and no more. 120 records without a title, between
    three good ones: all 120 listed a page at a time (API and staff page), downloadable as the
    very bytes they were in the file; fixed in a MARC editor, they load cleanly."""
    broken = [untitled(n) for n in range(1, 121)]
    data = iso2709(book(1, "好饿的毛毛虫"), *broken[:60], book(2, "猜猜我有多爱你"), *broken[60:], book(3, "大卫，不可以"))

    await sign_in_staff(client)
    await client.get("/")
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    response = await client.post("/api/catalog/imports", headers=headers, data={"on_match": "overlay"},
                                 files={"file": ("vendor-with-120-broken.mrc", data, "application/marc")})
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "staged"
    assert {k: batch["counts"][k] for k in ("read", "new", "refused")} == {"read": 123, "new": 3, "refused": 120}

    listed, pages = [], []
    for page in (1, 2, 3, 4):
        answer = (await client.get(f"/api/catalog/imports/{batch['uuid']}/records",
                                   params={"outcome": "refused", "page": page, "page_size": 50})).json()
        assert answer["total"] == 120
        pages.append(len(answer["records"]))
        listed += answer["records"]
    assert pages == [50, 50, 20, 0]
    assert [r["control_number"] for r in listed] == [f"NT-{n:03d}" for n in range(1, 121)]
    assert [r["position"] for r in listed] == [*range(2, 62), *range(63, 123)]
    assert all(r["outcome"] == "refused" and r["reason"] for r in listed)
    # The staff page: 50 a page, the third page holds the last 20.
    third = await client.get(f"/staff/catalog/imports/{batch['uuid']}", params={"show": "refused", "page": 3})
    assert third.status_code == 200
    assert "NT-101" in third.text and "NT-120" in third.text and "NT-100" not in third.text
    assert shown_counts(third.text)["refused"] == 120

    download = await client.get(f"/api/catalog/imports/{batch['uuid']}/refused.mrc")
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/marc")
    assert download.headers["content-disposition"].endswith('.mrc"')
    assert download.content == b"".join(record.as_marc() for record in broken)
    page_download = await client.get(f"/staff/catalog/imports/{batch['uuid']}/refused.mrc")
    assert page_download.content == download.content
    again = list(pymarc.MARCReader(download.content, to_unicode=True, force_utf8=True))
    assert [r["001"].data for r in again] == [f"NT-{n:03d}" for n in range(1, 121)]

    # Fixed and loaded again, as a new import: every one comes in.
    repaired = iso2709(*(fixed(r) for r in again))
    response = await client.post("/api/catalog/imports", headers=headers, data={"commit": "true"},
                                 files={"file": ("fixed.mrc", repaired, "application/marc")})
    assert response.status_code == 201, response.text
    counts = response.json()["counts"]
    assert response.json()["status"] == "committed"
    assert (counts["read"], counts["new"], counts["refused"]) == (120, 120, 0)
    assert await Record.count() == 120  # the first batch was only staged: its 3 good ones are not in
    assert (await record("NT-120"))["title"] == "补录绘本 NT-120"


async def test_the_one_pass_import_reports_every_refused_record_too(demo):
    """`library catalog import` without --stage-only: its report lists all 120, not 50."""
    data = iso2709(*(untitled(n) for n in range(1, 121)), book(1, "好饿的毛毛虫"))
    report = await batches.import_marc(data, "librarian", TODAY)
    assert (report.read, report.new, report.refused) == (121, 1, 120)
    assert [skip.control_number for skip in report.skipped] == [f"NT-{n:03d}" for n in range(1, 121)]
    assert (await batches.batch_detail(report.batch))["status"] == "committed"


async def test_the_same_record_twice_in_a_file_is_one_record(demo):
    """A vendor file that repeats a record (once corrected, once as it was): one record each,
    the repeat counted as an overlay or as unchanged, the same forecast as done."""
    data = iso2709(book(1, "好饿的毛毛虫"), book(1, "好饿的毛毛虫", note="一条毛毛虫吃了一个星期。"),
                   book(2, "猜猜我有多爱你"), book(2, "猜猜我有多爱你"))
    batch, staged = await stage(data)
    expected = {**{key: 0 for key in COUNTED}, "read": 4, "new": 2, "matched": 1, "unchanged": 1}
    assert counts_of(staged) == expected
    assert counts_of(await batches.commit(batch, "librarian", TODAY)) == expected
    assert [len(await records_by(control)) for control in ("V-001", "V-002")] == [1, 1]
    assert (await record("V-001"))["summary"] == "一条毛毛虫吃了一个星期。"
    report = await batches.undo(batch, "librarian")
    assert (report["records_removed"], report["kept"]) == (2, []) and await Record.count() == 0


async def test_refused_records_of_a_marcxml_file_download_as_marcxml(demo):
    recs = [book(1, "好饿的毛毛虫"), untitled(1), book(2, "猜猜我有多爱你"), untitled(2)]
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">'
           + b"".join(pymarc.record_to_xml(r, namespace=True) for r in recs) + b"</collection>")
    batch, staged = await stage(xml, file_name="vendor.xml")
    assert (staged.read, staged.new, staged.refused) == (4, 2, 2)
    download = b"".join([chunk async for chunk in await batches.refused_file(batch)])
    assert [r["001"].data for r in pymarc.parse_xml_to_array(io.BytesIO(download))] == ["NT-001", "NT-002"]


# --- 3. the choice for matches: overlay, add, ignore ---------------------------------------------------


@pytest.mark.parametrize("on_match", ["overlay", "add", "ignore"])
async def test_a_corrected_file_after_a_local_edit_does_what_the_choice_says(demo, on_match):
    """The vendor re-sends two records with a summary added; meanwhile a librarian corrected
    one's title at the desk. Overlay takes the summaries and keeps her title; add makes two
    new records flagged as possible duplicates and leaves the catalogued ones alone; ignore
    leaves the catalogue as it is."""
    await batches.import_marc(iso2709(book(1, "好饿的毛毛虫"), book(2, "猜猜我有多爱你")), "librarian", TODAY)
    caterpillar = await record("V-001")
    await edit_title(str(caterpillar["uuid"]), "好饿的毛毛虫（精装版）")
    edited = await record("V-001")
    assert edited["title"] == "好饿的毛毛虫（精装版）"
    hares = await record("V-002")

    corrected = iso2709(book(1, "好饿的毛毛虫", note="一条毛毛虫吃了一个星期。"),
                        book(2, "猜猜我有多爱你", note="小兔子和大兔子比赛谁的爱更多。"))
    batch, staged = await stage(corrected)
    assert (staged.read, staged.matched) == (2, 2)  # staging counts matches as overlays
    await batches.choose(batch, on_match)
    shown = (await batches.batch_detail(batch))["counts"]
    assert add_up(shown)
    assert {"overlay": shown["matched"], "add": shown["new"], "ignore": shown["ignored"]}[on_match] == 2
    log_before = await change_log()
    committed = await batches.commit(batch, "librarian", TODAY)  # the choice made on the batch
    assert counts_of(committed) == counts_of(shown)
    assert (await batches.batch_detail(batch))["on_match"] == on_match

    rows = {n: await records_by(f"V-{n:03d}") for n in (1, 2)}
    if on_match == "overlay":
        assert committed.matched == 2 and await Record.count() == 2
        [caterpillar], [hares_now] = rows[1], rows[2]
        assert caterpillar["title"] == "好饿的毛毛虫（精装版）"  # her correction stays
        assert caterpillar["summary"] == "一条毛毛虫吃了一个星期。"  # the vendor's new summary comes in
        assert hares_now["summary"] == "小兔子和大兔子比赛谁的爱更多。"
        assert "title" in caterpillar["local_edits"]
    elif on_match == "add":
        assert (committed.new, committed.possible_duplicates) == (2, 2) and await Record.count() == 4
        assert [r["id"] for r in rows[1]][0] == edited["id"] and [r["id"] for r in rows[2]][0] == hares["id"]
        assert (rows[1][0]["title"], rows[1][0]["summary"]) == ("好饿的毛毛虫（精装版）", "")
        assert rows[2][0]["summary"] == "" and rows[2][0]["updated_at"] == hares["updated_at"]
        assert (rows[1][1]["title"], rows[1][1]["summary"]) == ("好饿的毛毛虫", "一条毛毛虫吃了一个星期。")
        assert rows[2][1]["summary"] == "小兔子和大兔子比赛谁的爱更多。"
    else:
        assert committed.ignored == 2 and await Record.count() == 2
        assert [(r["title"], r["summary"], r["updated_at"]) for r in rows[1] + rows[2]] == [
            (edited["title"], "", edited["updated_at"]), (hares["title"], "", hares["updated_at"])]
        assert await change_log() == log_before  # ignored: nothing written, nothing to sync


async def test_the_choice_can_be_made_when_committing_and_a_wrong_one_is_refused(demo):
    await batches.import_marc(book(1, "好饿的毛毛虫").as_marc(), "librarian", TODAY)
    batch, _ = await stage(book(1, "好饿的毛毛虫", note="新的简介。").as_marc())
    with pytest.raises(batches.InvalidInput):
        await batches.choose(batch, "merge")
    committed = await batches.commit(batch, "librarian", TODAY, on_match="ignore")
    assert (committed.ignored, committed.matched) == (1, 0)
    assert (await record("V-001"))["summary"] == ""
    with pytest.raises(Conflict):  # committed once: a second click commits nothing
        await batches.commit(batch, "librarian", TODAY)
    with pytest.raises(Conflict):
        await batches.choose(batch, "overlay")


async def test_three_clicks_on_commit_make_one_commit(demo):
    batch, _ = await stage(iso2709(*(book(n, f"绘本 {n}", holdings=[copy(f"CLK{n:04d}")]) for n in range(1, 41))))
    results = await asyncio.gather(*(batches.commit(batch, "librarian", TODAY) for _ in range(3)),
                                   return_exceptions=True)
    done = [r for r in results if isinstance(r, batches.ImportCounts)]
    assert len(done) == 1 and done[0].new == 40
    assert all(isinstance(r, Conflict) for r in results if r is not done[0])
    assert (await Record.count(), await Item.count()) == (40, 40)
    assert await AuditEntry.count().where(AuditEntry.action == "catalog.import_committed") == 1


async def test_a_wrong_choice_at_commit_is_refused_and_leaves_the_batch_staged(demo):
    """The API takes the choice with the commit ({"on_match": ...}): a typo there must be a 422
    that leaves the batch as it was, not a batch nobody can commit, discard or undo."""
    await batches.import_marc(book(1, "好饿的毛毛虫").as_marc(), "librarian", TODAY)
    batch, _ = await stage(book(1, "好饿的毛毛虫", note="新的简介。").as_marc())
    with pytest.raises(batches.InvalidInput):
        await batches.commit(batch, "librarian", TODAY, on_match="merge")
    assert (await batches.batch_detail(batch))["status"] == "staged"
    committed = await batches.commit(batch, "librarian", TODAY, on_match="overlay")
    assert committed.matched == 1


# --- 4. an unchanged file writes nothing -------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["marc21", "cnmarc"])
async def test_a_resent_unchanged_file_writes_nothing(demo, flavour):
    """The vendor re-sends the same file (records that use every tag, with copies): every record
    is unchanged, nothing is written, the sync change log gains no row, no timestamp moves."""
    if flavour == "marc21":
        data = iso2709(*(marc21_specimen(n, holdings=[{"a": "ZX", "b": "ZX", "p": f"SPEC{n:04d}", "y": "picture_book"}])
                         for n in range(1, 7)))
    else:
        data = iso2709(*(cnmarc_specimen(n, holdings=[{"a": "ZX", "b": f"SPEC{n:04d}", "c": "绘本区"}])
                         for n in range(1, 7)))  # 905: $a branch, $b barcode, $c shelf
    first = await batches.import_marc(data, "librarian", TODAY)
    assert (first.new, first.refused, first.copies_new) == (6, 0, 6)
    log_before = await change_log()
    records_before = {str(r["uuid"]): r["updated_at"] for r in await Record.select(Record.uuid, Record.updated_at)}
    items_before = {str(i["uuid"]): i["updated_at"] for i in await Item.select(Item.uuid, Item.updated_at)}

    batch, staged = await stage(data, file_name="resent.mrc")
    unchanged = {**{key: 0 for key in COUNTED}, "read": 6, "unchanged": 6, "with_warnings": staged.with_warnings}
    assert counts_of(staged) == unchanged
    committed = await batches.commit(batch, "librarian", TODAY)
    assert counts_of(committed) == unchanged
    assert await change_log() == log_before
    assert {str(r["uuid"]): r["updated_at"] for r in await Record.select(Record.uuid, Record.updated_at)} == \
        records_before
    assert {str(i["uuid"]): i["updated_at"] for i in await Item.select(Item.uuid, Item.updated_at)} == items_before
    detail = await batches.batch_detail(batch)
    assert detail["status"] == "committed" and counts_of(detail["counts"]) == unchanged
    # Nothing for undo to do either: the batch kept no written record.
    kept = await ImportBatchRecord.select(ImportBatchRecord.outcome).where(
        ImportBatchRecord.batch == detail["id"])
    assert {row["outcome"] for row in kept} <= {"unchanged"}


# --- 5. undo --------------------------------------------------------------------------------------------


async def test_undo_after_a_reader_borrowed_a_copy_leaves_it_and_says_so(demo):
    """An import adds two books with a copy each and corrects a catalogued one (and moves its
    copy to another shelf). A reader borrows one new copy; then the librarian undoes the
    import. The other new book and its copy go; the corrected book and its copy get their
    values back; the borrowed copy and its record stay, the loan untouched, and the report
    names both with the reason."""
    await batches.import_marc(book(1, "好饿的毛毛虫", holdings=[copy("OLD0001", shelf="绘本区")]).as_marc(),
                              "librarian", TODAY)
    old = await record("V-001")
    old_copy = await item("OLD0001")
    data = iso2709(book(1, "好饿的毛毛虫", note="一条毛毛虫吃了一个星期。", holdings=[copy("OLD0001", shelf="新书架")]),
                   book(21, "团圆", holdings=[copy("NEW0021")]),
                   book(22, "安的种子", holdings=[copy("NEW0022")]))
    batch, staged = await stage(data)
    committed = await batches.commit(batch, "librarian", TODAY)
    assert (committed.new, committed.matched, committed.copies_new, committed.copies_changed) == (2, 1, 2, 1)
    assert (await item("OLD0001"))["shelf_location"] == "新书架"

    lent = await loans.checkout(DESK, "ZX", "ZX10000001", "NEW0021", now_utc())
    assert lent
    reunion = await record("V-021")

    report = await batches.undo(batch, "librarian")
    assert (report["records_removed"], report["copies_removed"]) == (1, 1)
    assert (report["records_restored"], report["copies_restored"]) == (1, 1)
    assert ["copy", "NEW0021", "lent_since"] in report["kept"]
    assert ["record", str(reunion["uuid"]), "团圆", "lent_since"] in report["kept"]
    assert len(report["kept"]) == 2
    # What it says is what it did.
    assert await record("V-022") is None and await item("NEW0022") is None
    assert (await record("V-021"))["id"] == reunion["id"]
    on_loan = await item("NEW0021")
    assert on_loan["status"] == "on_loan" and on_loan["record"] == reunion["id"]
    assert await Loan.count().where((Loan.item == on_loan["id"]) & Loan.returned_at.is_null()) == 1
    restored = await record("V-001")
    assert (restored["id"], restored["summary"], restored["title"]) == (old["id"], "", old["title"])
    assert restored["marc"] == old["marc"]
    assert (await item("OLD0001"))["shelf_location"] == old_copy["shelf_location"] == "绘本区"

    detail = await batches.batch_detail(batch)
    assert detail["status"] == "undone" and detail["undone_by"] == "librarian"
    assert detail["undo_report"]["kept"] == report["kept"]
    with pytest.raises(Conflict):  # undone once
        await batches.undo(batch, "librarian")


async def test_a_staged_import_cannot_be_undone_only_discarded(demo):
    batch, _ = await stage(book(1, "好饿的毛毛虫").as_marc())
    with pytest.raises(Conflict):
        await batches.undo(batch, "librarian")
    await batches.discard(batch)
    assert await ImportBatch.count() == 0 and await Record.count() == 0


# --- 6. over HTTP ----------------------------------------------------------------------------------------


async def test_a_librarian_uploads_looks_chooses_commits_and_undoes_on_the_staff_pages(client):
    await batches.import_marc(book(9, "大卫，不可以").as_marc(), "librarian", TODAY)
    await sign_in_staff(client)
    token = await form_token(client, "/staff/catalog/imports")
    data = iso2709(book(1, "好饿的毛毛虫", holdings=[copy("WEB0001")]), untitled(1), book(2, "猜猜我有多爱你"),
                   book(9, "大卫，不可以", note="大卫总是闯祸。"))
    uploaded = await client.post("/staff/catalog/imports", data={"_csrf_token": token, "on_match": "overlay"},
                                 files={"file": ("vendor.mrc", data, "application/marc")})
    assert uploaded.status_code == 303, uploaded.text
    where = uploaded.headers["location"]
    assert where.startswith("/staff/catalog/imports/")
    page = await client.get(where)
    assert page.status_code == 200 and 'data-status="staged"' in page.text
    assert {k: shown_counts(page.text)[k] for k in ("read", "new", "refused", "matched", "ignored")} == \
        {"read": 4, "new": 2, "refused": 1, "matched": 1, "ignored": 0}
    assert "NT-001" in page.text and f"{where}/refused.mrc" in page.text
    assert await Record.count() == 1  # looked at, not written

    # The choice for the match, made on the batch's page: the forecast follows it.
    token = await form_token(client, where)
    chosen = await client.post(f"{where}/choice", data={"_csrf_token": token, "on_match": "ignore"})
    assert chosen.status_code == 303
    page = await client.get(where)
    assert 'value="ignore" checked' in page.text
    assert (shown_counts(page.text)["matched"], shown_counts(page.text)["ignored"]) == (0, 1)

    token = await form_token(client, where)
    committed = await client.post(f"{where}/commit", data={"_csrf_token": token})
    assert committed.status_code == 303
    page = await client.get(where)
    assert 'data-status="committed"' in page.text
    assert (shown_counts(page.text)["new"], shown_counts(page.text)["ignored"]) == (2, 1)
    assert await Record.count() == 3 and await Item.count() == 1
    assert (await record("V-009"))["summary"] == ""  # ignored, as chosen
    listing = await client.get("/staff/catalog/imports")
    assert listing.status_code == 200 and "vendor.mrc" in listing.text

    token = await form_token(client, where)
    undone = await client.post(f"{where}/undo", data={"_csrf_token": token})
    assert undone.status_code == 303
    page = await client.get(where)
    assert 'data-status="undone"' in page.text and "data-undo" in page.text
    assert await Record.count() == 1 and await Item.count() == 0  # what was there before stays
    # Without the form's token, nothing happens.
    refused = await client.post(f"{where}/undo", data={})
    assert refused.status_code == 403


async def test_the_api_stages_chooses_commits_and_undoes(client):
    await sign_in_staff(client)
    await client.get("/")
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    await batches.import_marc(book(1, "好饿的毛毛虫").as_marc(), "librarian", TODAY)
    data = iso2709(book(1, "好饿的毛毛虫", note="新的简介。"), book(2, "猜猜我有多爱你"))
    staged = await client.post("/api/catalog/imports", headers=headers,
                               files={"file": ("api.mrc", data, "application/marc")})
    assert staged.status_code == 201, staged.text
    batch = staged.json()
    assert batch["status"] == "staged" and batch["file_name"] == "api.mrc"
    assert {k: batch["counts"][k] for k in ("read", "new", "matched")} == {"read": 2, "new": 1, "matched": 1}
    listed = (await client.get("/api/catalog/imports")).json()
    assert listed["total"] == 2 and listed["batches"][0]["uuid"] == batch["uuid"]
    matched = (await client.get(f"/api/catalog/imports/{batch['uuid']}/records",
                                params={"outcome": "matched"})).json()
    assert [r["control_number"] for r in matched["records"]] == ["V-001"]

    committed = await client.post(f"/api/catalog/imports/{batch['uuid']}/commit", headers=headers,
                                  json={"on_match": "ignore"})
    assert committed.status_code in (200, 201), committed.text
    answer = committed.json()
    assert answer["status"] == "committed" and answer["on_match"] == "ignore"
    assert (answer["counts"]["new"], answer["counts"]["ignored"], answer["counts"]["matched"]) == (1, 1, 0)
    assert (await record("V-001"))["summary"] == ""
    twice = await client.post(f"/api/catalog/imports/{batch['uuid']}/commit", headers=headers)
    assert twice.status_code == 409

    undone = await client.post(f"/api/catalog/imports/{batch['uuid']}/undo", headers=headers)
    assert undone.status_code in (200, 201), undone.text
    assert undone.json()["status"] == "undone"
    assert undone.json()["undo_report"]["records_removed"] == 1
    assert await record("V-002") is None and await record("V-001") is not None
    assert (await client.get("/api/catalog/imports/not-a-uuid")).status_code == 404


async def test_a_reader_cannot_import(client):
    batch, _ = await stage(iso2709(untitled(1), book(1, "好饿的毛毛虫")))
    await sign_in_patron(client)
    await client.get("/")
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    for path in ("/staff/catalog/imports", f"/staff/catalog/imports/{batch}", "/api/catalog/imports",
                 f"/api/catalog/imports/{batch}", f"/api/catalog/imports/{batch}/records",
                 f"/api/catalog/imports/{batch}/refused.mrc", f"/staff/catalog/imports/{batch}/refused.mrc"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert b"NT-001" not in response.content
    upload = await client.post("/api/catalog/imports", headers=headers,
                               files={"file": ("mine.mrc", book(2, "我的书").as_marc(), "application/marc")})
    assert upload.status_code == 403
    for action in ("commit", "undo"):
        assert (await client.post(f"/api/catalog/imports/{batch}/{action}", headers=headers)).status_code == 403
    assert (await batches.batch_detail(batch))["status"] == "staged"
    assert await ImportBatch.count() == 1 and await Record.count() == 0


async def test_undo_leaves_what_readers_and_librarians_touched_since(demo):
    """After the import: a reader borrows a copy the import moved to another shelf, a
    librarian corrects the title of a record it overlaid, a reader places a hold on a record it
    created. Undo leaves those three as they are (the loan open, the correction kept, the
    hold's record there) and says so; everything else is taken back."""
    await batches.import_marc(iso2709(book(1, "好饿的毛毛虫", holdings=[copy("OLD0001", shelf="绘本区")]),
                                      book(2, "猜猜我有多爱你")), "librarian", TODAY)
    caterpillar = await record("V-001")
    data = iso2709(book(1, "好饿的毛毛虫", note="新简介一", holdings=[copy("OLD0001", shelf="新书架")]),
                   book(2, "猜猜我有多爱你", note="新简介二"),
                   book(31, "团圆", holdings=[copy("NEW0031")]),
                   book(32, "安的种子", holdings=[copy("NEW0032")]))
    batch, _ = await stage(data)
    committed = await batches.commit(batch, "librarian", TODAY)
    assert (committed.new, committed.matched, committed.copies_new, committed.copies_changed) == (2, 2, 2, 1)

    await loans.checkout(DESK, "ZX", "ZX10000001", "OLD0001", now_utc())
    hares = await record("V-002")
    await edit_title(str(hares["uuid"]), "猜猜我有多爱你（修订）")
    seeds = await record("V-032")
    await loans.place_hold(DESK, str(seeds["uuid"]), "ZX", now_utc(), card_number="ZX10000001")

    report = await batches.undo(batch, "librarian")
    kept = {tuple(entry[:2]): entry[-1] for entry in report["kept"]}
    assert kept.pop(("copy", "OLD0001")) == "lent_since"
    assert kept.pop(("record", str(hares["uuid"]))) == "changed_since"
    assert kept.pop(("record", str(seeds["uuid"]))) == "held_since"
    assert kept.pop(("copy", "NEW0032")) == "held_since"  # the copy that will fill the hold
    assert kept == {}
    assert (report["records_removed"], report["records_restored"]) == (1, 1)
    # The borrowed copy: still on loan, where the import put it.
    lent = await item("OLD0001")
    assert (lent["status"], lent["shelf_location"]) == ("on_loan", "新书架")
    assert await Loan.count().where(Loan.returned_at.is_null()) == 1
    # The corrected record keeps the correction (and the summary the import brought with it).
    assert ((await record("V-002"))["title"], (await record("V-002"))["summary"]) == ("猜猜我有多爱你（修订）", "新简介二")
    # The held record is there, its hold waiting.
    assert (await record("V-032"))["id"] == seeds["id"]
    assert await Hold.count().where((Hold.record == seeds["id"]) & (Hold.status == "waiting")) == 1
    # The rest is taken back.
    assert await record("V-031") is None and await item("NEW0031") is None
    restored = await record("V-001")
    assert (restored["summary"], restored["marc"]) == ("", caterpillar["marc"])


async def test_undo_keeps_the_copy_of_a_record_a_reader_is_waiting_for(demo):
    """The docs: a record a reader placed a hold on since the import "is left as it is". Its
    only copy is what the reader is waiting for: it must stay with it (or be reported)."""
    batch, _ = await stage(book(32, "安的种子", holdings=[copy("NEW0032")]).as_marc())
    await batches.commit(batch, "librarian", TODAY)
    seeds = await record("V-032")
    await loans.place_hold(DESK, str(seeds["uuid"]), "ZX", now_utc(), card_number="ZX10000001")
    report = await batches.undo(batch, "librarian")
    assert ["record", str(seeds["uuid"]), "安的种子", "held_since"] in report["kept"]
    assert await record("V-032") is not None
    assert await item("NEW0032") is not None or any(entry[:2] == ["copy", "NEW0032"] for entry in report["kept"])


async def test_undo_leaves_a_changed_copy_lent_while_the_commit_was_running(demo):
    await batches.import_marc(book(1, "好饿的毛毛虫", holdings=[copy("OLD0001", shelf="绘本区")]).as_marc(),
                              "librarian", TODAY)
    batch, _ = await stage(book(1, "好饿的毛毛虫", holdings=[copy("OLD0001", shelf="新书架")]).as_marc())
    assert (await batches.commit(batch, "librarian", TODAY)).copies_changed == 1
    # The desk lent it a second before the commit finished (a 250,000-record file takes minutes).
    during = (await batches.batch_detail(batch))["committed_at"] - dt.timedelta(seconds=1)
    await loans.checkout(DESK, "ZX", "ZX10000001", "OLD0001", during)
    report = await batches.undo(batch, "librarian")
    assert await Loan.count().where(Loan.returned_at.is_null()) == 1
    assert (await item("OLD0001"))["status"] == "on_loan"
    assert any(entry[:2] == ["copy", "OLD0001"] for entry in report["kept"])


async def test_two_clicks_on_undo_make_one_undo_with_a_true_report(demo):
    batch, _ = await stage(iso2709(*(book(n, f"绘本 {n}") for n in range(1, 41))))
    await batches.commit(batch, "librarian", TODAY)
    results = await asyncio.gather(batches.undo(batch, "librarian"), batches.undo(batch, "librarian"),
                                   return_exceptions=True)
    assert await Record.count() == 0
    assert (await batches.batch_detail(batch))["undo_report"]["records_removed"] == 40
    assert await AuditEntry.count().where(AuditEntry.action == "catalog.import_undone") == 1
    assert sum(isinstance(r, Conflict) for r in results) == 1
