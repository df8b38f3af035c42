"""An import batch indexes and logs its inserted rows set-based (the per-row insert triggers
stand aside while the batch's mark is set): nothing may be lost on the way, on either engine."""

import asyncio
import datetime as dt
import uuid

import pytest

from library.branches.tables import Branch
from library.catalog import conversion, converters, exchange, service
from library.catalog.batches import import_marc
from library.catalog.service import RecordInput, SearchFilters
from library.catalog.tables import Item, PossibleDuplicate, Record
from library.db import close_connections, is_sqlite
from library.demo import load_demo
from tests.marc_samples import iso2709, marc21

TODAY = dt.date(2026, 11, 28)
WORDS = ["aardvark", "buttercup", "cinnamon", "dandelion", "elderberry", "foxglove", "gooseberry", "hollyhock",
         "indigo", "juniper", "kumquat"]


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)
    await Record.raw("DELETE FROM sync_change")  # only what the test writes is looked at


@pytest.fixture
def batches_seen(monkeypatch):
    """Every batch's titles, and the most batches ever written at once."""
    seen = {"titles": [], "at_once": 0, "most_at_once": 0}
    apply = exchange._apply

    async def watched(entries, run, *earlier):
        seen["titles"].append([entry.row[conversion.ROW_COLUMNS.index("title")] for entry in entries])
        seen["at_once"] += 1
        seen["most_at_once"] = max(seen["most_at_once"], seen["at_once"])
        try:
            await apply(entries, run, *earlier)
        finally:
            seen["at_once"] -= 1

    monkeypatch.setattr(exchange, "_apply", watched)
    return seen


def sample(words: list[str], boom: str | None = None) -> bytes:
    """Records with and without ISBN or control number (the unkeyed ones are inserted one by one),
    one or two copies each, at ZX and JX."""
    records = []
    for n, word in enumerate(words):
        control = None if n % 4 == 3 else f"BULK-{word}"  # every fourth has nothing to be found by
        holdings = [{"a": "ZX", "b": "JX" if n % 2 else "ZX", "p": f"B{n:03d}A", "y": "book"}]
        if n % 3 == 0:
            holdings.append({"a": "JX", "b": "JX", "p": "BOOM" if word == boom else f"B{n:03d}B", "y": "book"})
        records.append(marc21(f"Bulk {word}", control=control, holdings=holdings))
    return iso2709(*records)


async def assert_indexed_and_logged_once(expected_records: int, expected_items: int) -> None:
    records = await Record.select(Record.uuid, Record.title)
    items = await Item.select(Item.uuid, Item.home_branch, Item.current_branch)
    assert (len(records), len(items)) == (expected_records, expected_items)
    logged = await Record.raw("SELECT kind, entity_uuid, branches FROM sync_change")
    assert sorted((row["kind"], row["entity_uuid"], row["branches"]) for row in logged) == sorted(
        [("record", str(row["uuid"]), "") for row in records]
        + [("item", str(row["uuid"]), f"|{row['home_branch']}|{row['current_branch']}|") for row in items])
    for row in records:
        word = row["title"].split()[-1]
        assert (await service.search(word, SearchFilters()))["total"] == 1, row["title"]
    if is_sqlite():  # the index holds exactly the content table's rows
        await Record.raw("INSERT INTO record_fts (record_fts, rank) VALUES ('integrity-check', 1)")
    assert (await Record.raw("SELECT COUNT(*) AS n FROM catalog_bulk_load"))[0]["n"] == 0


async def test_every_imported_record_is_indexed_and_every_row_logged_once(demo, monkeypatch):
    monkeypatch.setattr(exchange, "BATCH", 4)  # several batches, with keyed and unkeyed records
    monkeypatch.setattr(exchange, "SQLITE_MAX_PARAMETERS", 60)  # and several INSERT statements a batch
    report = await import_marc(sample(WORDS), "test", TODAY)
    assert (report.read, report.new, report.copies_new, report.refused) == (11, 11, 15, 0)
    await assert_indexed_and_logged_once(11, 15)


async def test_a_big_file_converted_in_workers_is_indexed_and_logged(demo, monkeypatch):
    monkeypatch.setattr(converters, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(converters, "CHUNK_RECORDS", 3)
    report = await import_marc(sample(WORDS[:7]), "test", TODAY)
    assert (report.new, report.copies_new) == (7, 10)
    await assert_indexed_and_logged_once(7, 10)


async def test_updates_in_an_import_batch_are_logged_by_their_triggers_and_unchanged_records_not_at_all(demo):
    await import_marc(sample(WORDS[:4]), "test", TODAY)
    await Record.raw("DELETE FROM sync_change")
    again = sample(WORDS[:4]).replace(b"Bulk aardvark", b"Bulk arugula!")  # same length: the frame stays valid
    report = await import_marc(again, "test", TODAY)
    # aardvark is matched on its control number and overlaid; buttercup and cinnamon are unchanged
    # (nothing written); the unkeyed fourth record cannot be matched: it is created again, and its
    # two copies move to it.
    assert (report.new, report.matched, report.unchanged, report.copies_new, report.copies_changed) == (1, 1, 2, 0, 2)
    logged = await Record.raw("SELECT kind, COUNT(*) AS n FROM sync_change GROUP BY kind")
    assert {row["kind"]: row["n"] for row in logged} == {"record": 2, "item": 2}
    assert (await service.search("arugula", SearchFilters()))["total"] == 1
    assert (await service.search("aardvark", SearchFilters()))["total"] == 0
    if is_sqlite():
        await Record.raw("INSERT INTO record_fts (record_fts, rank) VALUES ('integrity-check', 1)")


async def test_a_batch_naming_more_barcodes_than_sqlite_takes_parameters_is_looked_up_in_slices(demo, monkeypatch,
                                                                                                 batches_seen):
    import sqlite3

    from library.db import PooledSQLiteEngine

    if is_sqlite():  # a build allowing 40 parameters a statement (one record row takes 26)
        opened = PooledSQLiteEngine.get_connection

        async def limited(self):
            connection = await opened(self)
            connection._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)
            return connection

        monkeypatch.setattr(PooledSQLiteEngine, "get_connection", limited)
    words = [f"{word}{n}" for n in range(5) for word in WORDS]  # 55 records, 74 barcodes: one batch
    try:
        await import_marc(sample(words), "test", TODAY)
        report = await import_marc(sample(words), "test", TODAY)
        copies = await Item.count()
    finally:
        await close_connections()  # no limited connection stays in the pool
    # Every keyed record and every barcode is found again in one go: unchanged, none created twice;
    # the 13 unkeyed records are new again, and their 18 copies move to them.
    assert [len(titles) for titles in batches_seen["titles"]] == [55, 55]
    assert (report.new, report.matched, report.unchanged, report.copies_new, report.copies_changed) == (
        13, 0, 42, 0, 18)
    assert copies == 74


async def test_a_barcode_twice_in_one_file_is_one_copy_of_the_later_record(demo):
    first = marc21("Bulk first", control="DUP-1", holdings=[{"a": "ZX", "b": "ZX", "p": "DUP0001", "y": "book"}])
    later = marc21("Bulk later", control="DUP-2", holdings=[{"a": "JX", "b": "JX", "p": "DUP0001", "y": "book"}])
    report = await import_marc(iso2709(first, later), "test", TODAY)
    assert (report.new, report.copies_new, report.copies_changed) == (2, 1, 0)
    [copy] = await Item.select(Item.record.title, Item.home_branch.code).where(Item.barcode == "DUP0001")
    assert (copy["record.title"], copy["home_branch.code"]) == ("Bulk later", "JX")
    await assert_indexed_and_logged_once(2, 1)


@pytest.fixture
async def boom_trigger():
    """A copy with barcode BOOM fails in the database itself, after its batch has inserted rows."""
    if is_sqlite():
        await Item.raw("CREATE TRIGGER test_boom BEFORE INSERT ON item WHEN NEW.barcode = 'BOOM' "
                       "BEGIN SELECT RAISE(ABORT, 'boom'); END")
        drop = ["DROP TRIGGER test_boom"]
    else:
        await Item.raw("CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                       "IF NEW.barcode = 'BOOM' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$")
        await Item.raw("CREATE TRIGGER test_boom BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION test_boom()")
        drop = ["DROP TRIGGER test_boom ON item", "DROP FUNCTION test_boom()"]
    try:
        yield
    finally:
        for statement in drop:
            await Item.raw(statement)


async def test_a_batch_that_fails_midway_leaves_no_half_written_rows_and_no_mark(demo, boom_trigger, monkeypatch):
    monkeypatch.setattr(exchange, "BATCH", 4)
    report = await import_marc(sample(WORDS[:8], boom="dandelion"), "test", TODAY)
    # The batch fails as a whole, is retried record by record, and only the record with the bad copy is refused.
    assert (report.read, report.new, report.refused, report.copies_new) == (8, 7, 1, 9)
    assert [s.position for s in report.skipped] == [4] and "boom" in report.skipped[0].reason
    assert not await Record.exists().where(Record.title == "Bulk dandelion")
    assert (await service.search("dandelion", SearchFilters()))["total"] == 0
    await assert_indexed_and_logged_once(7, 9)


async def test_a_record_and_copy_written_outside_an_import_are_indexed_and_logged(demo):
    await import_marc(sample(WORDS[:2]), "test", TODAY)  # the mark has come and gone
    record_uuid = await service.create_record(RecordInput(title="Outside quince", control_number="OUT-1"), "test",
                                              TODAY)
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    await Item.insert(Item(uuid=uuid.uuid4(), record=(await Record.select(Record.id).where(
        Record.uuid == record_uuid).first())["id"], barcode="OUT-1-A", home_branch=branch["id"],
        current_branch=branch["id"]))
    assert (await service.search("quince", SearchFilters()))["total"] == 1
    await assert_indexed_and_logged_once(3, 4)


@pytest.mark.parametrize("text", [
    "a ; b | c | d | e", "  title  |  author |subject|  other ; x  ", "only a title", "", "|||", "a|b", "a | b | c",
    "a | b | c | d | e | f", " \t tab \t | \n newline \n | x", "| lead", "trail |", "标 题 | 作 者 | 主 题 | 其 他",
    "   ", "a  |  |  | d"])
async def test_an_import_indexes_a_search_text_in_the_sections_the_view_cuts_it_into(demo, text):
    """The batch writes the index from its rows (exchange._fts_sections); a later delete or change
    takes out what the view gives, so both must cut every text alike."""
    if not is_sqlite():
        pytest.skip("PostgreSQL's index is a generated column")
    await Record.raw("INSERT INTO record (uuid, title, search_text) VALUES ({}, 'x', {})", str(uuid.uuid4()), text)
    row = (await Record.raw("SELECT title, author, subject, other FROM record_search WHERE id = "
                            "(SELECT MAX(id) FROM record)"))[0]
    assert exchange._fts_sections(text) == (row["title"], row["author"], row["subject"], row["other"])


def test_imported_rows_get_time_ordered_version_7_uuids():
    new = conversion._uuid7_factory()
    made = [new() for _ in range(5000)]
    assert len(set(made)) == len(made)
    parsed = [uuid.UUID(text) for text in made]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == text for u, text in zip(parsed, made))
    assert [text[:13] for text in made] == sorted(text[:13] for text in made)  # the millisecond leads
    # and the 74 bits after version and variant are random: every hex digit there takes most values
    random_digits = [i for i in range(15, 36) if i not in (18, 19, 23)]
    assert all(len({text[i] for text in made}) >= 14 for i in random_digits)
    assert {text[19] for text in made} == set("89ab")  # the variant's digit: binary 10, then 2 random bits


async def test_postgresql_writes_two_batches_side_by_side_and_sqlite_one(demo, monkeypatch, batches_seen):
    monkeypatch.setattr(exchange, "BATCH", 2)
    report = await import_marc(sample(WORDS), "test", TODAY)
    assert (report.new, report.copies_new, report.refused) == (11, 15, 0)
    assert len(batches_seen["titles"]) == 6
    assert batches_seen["most_at_once"] == (1 if is_sqlite() else 2)
    await assert_indexed_and_logged_once(11, 15)


async def test_the_same_record_and_copy_in_two_batches_are_written_in_file_order(demo, monkeypatch, batches_seen):
    # Batches of one: each record is its own batch, and the next one names what this one did.
    monkeypatch.setattr(exchange, "BATCH", 1)
    copy = [{"a": "ZX", "b": "ZX", "p": "TWICE-1", "y": "book"}]
    records = [marc21("Twice first", control="TWICE", holdings=copy),
               marc21("Twice later", control="TWICE", holdings=[{**copy[0], "a": "JX", "b": "JX"}]),
               marc21("Other", control="OTHER", holdings=[{"a": "JX", "b": "JX", "p": "OTHER-1", "y": "book"}]),
               marc21("Twice last", isbns=["9787533259563"], control="TWICE")]
    report = await import_marc(iso2709(*records), "test", TODAY)
    assert (report.new, report.matched, report.copies_new, report.copies_changed, report.refused) == (2, 2, 2, 1, 0)
    assert batches_seen["titles"] == [["Twice first"], ["Twice later"], ["Other"], ["Twice last"]]
    [twice] = await Record.select(Record.title, Record.isbn13).where(Record.control_number == "TWICE")
    assert twice == {"title": "Twice last", "isbn13": "9787533259563"}
    [copy_row] = await Item.select(Item.record.control_number, Item.home_branch.code).where(
        Item.barcode == "TWICE-1")
    assert (copy_row["record.control_number"], copy_row["home_branch.code"]) == ("TWICE", "JX")
    assert [(await service.search(word, SearchFilters()))["total"] for word in ("last", "later", "other")] == [1, 0, 1]


async def test_a_batch_matching_a_record_an_earlier_batch_changes_looks_again_after_it(demo, monkeypatch):
    """Record R has ISBN X. The file's first batch finds R by control number and gives it ISBN Y;
    the second names ISBN X: in file order X is then nobody's, and the second batch creates a
    record (not flagged as R's possible duplicate), even when it first looked while the first
    batch was still being written."""
    await service.create_record(RecordInput(title="Existing", isbn="9787533259563", control_number="R-1"), "test",
                                TODAY)
    monkeypatch.setattr(exchange, "BATCH", 1)
    write = exchange.run_in_write_transaction
    calls = []

    async def slow_first(work, *args, **kwargs):
        calls.append(1)
        first = len(calls) == 1

        async def work_then_wait():
            done = await work()
            if first:  # still uncommitted while the second batch looks for its records
                await asyncio.sleep(0.3)
            return done

        return await write(work_then_wait, *args, **kwargs)

    monkeypatch.setattr(exchange, "run_in_write_transaction", slow_first)
    records = [marc21("Renumbered", isbns=["9787544291170"], control="R-1"),
               marc21("Second", isbns=["9787533259563"])]
    report = await import_marc(iso2709(*records), "test", TODAY)
    assert (report.new, report.matched, report.possible_duplicates) == (1, 1, 0)
    assert await PossibleDuplicate.count() == 0
    rows = await Record.select(Record.title, Record.isbn13, Record.control_number).order_by(Record.id)
    assert [(r["title"], r["isbn13"], r["control_number"]) for r in rows] == [
        ("Renumbered", "9787544291170", "R-1"), ("Second", "9787533259563", None)]


async def test_what_is_left_at_the_end_is_shared_between_the_free_writers(demo, monkeypatch, batches_seen):
    # A small file is converted at once: its 11 records, less than half of a batch of up to 30,
    # wait for the end of the file, and are then all "what is left".
    monkeypatch.setattr(exchange, "BATCH", 30)
    report = await import_marc(sample(WORDS), "test", TODAY)
    assert report.new == 11
    assert [len(titles) for titles in batches_seen["titles"]] == ([11] if is_sqlite() else [6, 5])
    monkeypatch.setattr(exchange, "BATCH", 5000)  # but never into batches smaller than a tenth of one
    await import_marc(sample(WORDS), "test", TODAY)
    assert [len(titles) for titles in batches_seen["titles"][-1:]] == [11]


async def test_converters_are_spawned_from_a_running_event_loop():
    """A server imports with its loop, connections and threads: its converters are new processes."""
    pool = converters.start()
    try:
        assert pool._mp_context.get_start_method() == "spawn"
    finally:
        pool.shutdown()


def test_converters_are_forked_from_a_process_alone(tmp_path):
    """The import command starts its converters first thing, before any loop or thread."""
    import subprocess
    import sys

    code = ("from library.catalog import converters\n"
            "pool = converters.start()\n"
            "print(pool._mp_context.get_start_method(), pool.submit(sum, [1, 2]).result())\n"
            "pool.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == (["fork", "3"] if sys.platform.startswith("linux") else ["spawn", "3"])
