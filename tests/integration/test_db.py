"""Write transactions whose BEGIN travels with their first statement, and `batch`, on both engines."""

import pytest

from library import config_cache
from library.branches.tables import Branch
from library.db import Statement, Unfinished, batch, run_in_write_transaction, run_script

INSERT = "INSERT INTO branch (uuid, code, name_zh, name_en) VALUES ({}, {}, {}, {})"


def branch_row(code: str) -> tuple:
    import uuid

    return (str(uuid.uuid4()), code, code, code)


async def codes() -> list[str]:
    return sorted(row["code"] for row in await Branch.select(Branch.code))


@pytest.mark.parametrize("lazy", [False, True])
async def test_a_batch_commits_its_writes_in_one_go(lazy):
    async def work():
        await Branch.raw("SELECT 1")
        return await batch(Statement(INSERT, branch_row("AA")), Statement(INSERT + " RETURNING code", branch_row("BB")),
                           commit=True)

    results = await run_in_write_transaction(work, begin_with_first_statement=lazy)
    assert results == [[], [{"code": "BB"}]]
    assert await codes() == ["AA", "BB"]


async def test_a_required_statement_without_rows_stops_the_batch_and_nothing_is_kept():
    async def work():
        outcome = await batch(Statement(INSERT, branch_row("AA")),
                              Statement("UPDATE branch SET name_en = 'x' WHERE code = 'NOPE' RETURNING id", required=True),
                              Statement(INSERT, branch_row("BB")), commit=True)
        assert outcome is None
        raise LookupError("refused")

    with pytest.raises(LookupError):
        await run_in_write_transaction(work, begin_with_first_statement=True)
    assert await codes() == []


async def test_a_failure_after_the_first_statement_rolls_everything_back():
    async def work():
        await batch(Statement(INSERT, branch_row("AA")))
        await batch(Statement(INSERT, branch_row("AA")))  # the same code twice: unique

    with pytest.raises(Exception):
        await run_in_write_transaction(work, begin_with_first_statement=True)
    assert await codes() == []


async def test_a_transaction_that_runs_nothing_ends_cleanly_and_the_next_one_works():
    async def nothing():
        return "nothing"

    assert await run_in_write_transaction(nothing, begin_with_first_statement=True) == "nothing"

    async def failing():
        raise LookupError("before any statement")

    with pytest.raises(LookupError):
        await run_in_write_transaction(failing, begin_with_first_statement=True)
    await run_in_write_transaction(lambda: batch(Statement(INSERT, branch_row("CC")), commit=True),
                                   begin_with_first_statement=True)
    assert await codes() == ["CC"]


async def test_batch_needs_a_transaction():
    with pytest.raises(RuntimeError):
        await batch(Statement("SELECT 1"))


async def test_the_configuration_version_moves_on_every_change_and_back_on_rollback():
    before = await config_cache.current_version()
    await run_in_write_transaction(lambda: batch(Statement(INSERT, branch_row("DD")), commit=True))
    after_insert = await config_cache.current_version()
    assert after_insert != before

    async def rolled_back():
        await Branch.raw("UPDATE branch SET name_en = 'changed' WHERE code = 'DD'")
        raise LookupError("undo")

    with pytest.raises(LookupError):
        await run_in_write_transaction(rolled_back)
    assert await config_cache.current_version() == after_insert
    await Branch.raw("DELETE FROM branch WHERE code = 'DD'")
    assert await config_cache.current_version() != after_insert


async def test_a_version_read_with_the_request_is_used_once_and_not_after_a_write():
    now = await config_cache.current_version()
    config_cache.read_with_request(12345)
    assert (await config_cache.current_version())[1] == 12345
    assert await config_cache.current_version() == now  # used once
    config_cache.read_with_request(12345)
    await run_in_write_transaction(lambda: batch(Statement(INSERT, branch_row("EE")), commit=True))
    assert await config_cache.current_version() not in (now, (now[0], 12345))


def two_branches_script(then=None):
    """Insert AA, read it back, insert BB: a transaction script."""
    rows, = yield [Statement(INSERT + " RETURNING code", branch_row("AA"))]
    assert rows == [{"code": "AA"}]
    read, written = yield [Statement("SELECT count(*) AS n FROM branch WHERE code = {}", ("AA",)),
                           Statement(INSERT, branch_row("BB"))]
    if then is not None:
        return then(read[0]["n"])
    return read[0]["n"]


@pytest.mark.parametrize("lazy", [False, True])
async def test_a_script_runs_its_statements_in_order_and_commits(lazy):
    async def work():
        return await run_script(two_branches_script())

    assert await run_in_write_transaction(work, begin_with_first_statement=lazy) == 1
    assert await codes() == ["AA", "BB"]


async def test_a_script_that_raises_keeps_nothing():
    def refuse(_):
        raise LookupError("refused after writing")

    with pytest.raises(LookupError):
        await run_in_write_transaction(lambda: run_script(two_branches_script(refuse)), begin_with_first_statement=True)
    assert await codes() == []
    # the connection is clean for the next writer
    await run_in_write_transaction(lambda: run_script(two_branches_script()), begin_with_first_statement=True)
    assert await codes() == ["AA", "BB"]


async def test_an_unfinished_script_leaves_the_rest_to_async_code_in_the_same_transaction():
    async def work(fail: bool):
        outcome = await run_script(two_branches_script(lambda n: Unfinished(n)))
        assert outcome == Unfinished(1)
        await batch(Statement(INSERT, branch_row("CC")))
        if fail:
            raise LookupError("undo all three")
        return await codes()

    with pytest.raises(LookupError):
        await run_in_write_transaction(lambda: work(True), begin_with_first_statement=True)
    assert await codes() == []
    assert await run_in_write_transaction(lambda: work(False), begin_with_first_statement=True) == ["AA", "BB", "CC"]
    assert await codes() == ["AA", "BB", "CC"]


async def test_a_script_waits_in_its_thread_while_another_process_writes_and_the_server_goes_on():
    """SQLite: a script runs on the event loop only when the write lock is free at once."""
    import asyncio
    import sqlite3

    from library.db import engine, is_sqlite

    if not is_sqlite():
        pytest.skip("SQLite's single writer")
    other = sqlite3.connect(engine().path, isolation_level=None)  # e.g. `library catalog import` in a shell
    other.execute("BEGIN IMMEDIATE")
    try:
        task = asyncio.create_task(run_in_write_transaction(lambda: run_script(two_branches_script()),
                                                            begin_with_first_statement=True))
        for _ in range(10):
            await asyncio.sleep(0.01)  # the event loop still serves others meanwhile
        assert not task.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await task == 1
    assert await codes() == ["AA", "BB"]


async def test_commits_on_the_event_loop_leave_the_wal_checkpoint_to_a_thread(monkeypatch):
    """SQLite: a script's COMMIT on the loop never checkpoints there; every Nth one schedules a
    PASSIVE checkpoint in a connection's thread, and the connection keeps its usual setting."""
    import asyncio
    import sqlite3

    from library import db

    if not db.is_sqlite():
        pytest.skip("SQLite's WAL")
    engine = db.engine()
    monkeypatch.setattr(db, "CHECKPOINT_EVERY_LOOP_COMMITS", 3)
    checkpoints = []
    real = type(engine).checkpoint

    async def counted(self):
        checkpoints.append(1)
        await real(self)

    monkeypatch.setattr(type(engine), "checkpoint", counted)
    before = engine._loop_commits
    for n in range(7):
        await run_in_write_transaction(lambda: run_script(one_branch_script(f"W{n}")), begin_with_first_statement=True)
        while engine._checkpoints:  # one at a time: a commit meeting one in flight starts none
            await asyncio.sleep(0.001)
    assert engine._loop_commits - before == 7  # all on the loop
    assert len(checkpoints) == (before + 7) // 3 - before // 3
    connection = await engine.get_connection()
    try:
        assert (await connection.execute_fetchall("PRAGMA wal_autocheckpoint"))[0]["wal_autocheckpoint"] == 1000
        assert (await connection.execute_fetchall("PRAGMA busy_timeout"))[0]["timeout"] > 0
    finally:
        await engine.release(connection)
    with sqlite3.connect(engine.path) as other:  # the rows are in the database for everyone
        assert other.execute("SELECT count(*) FROM branch WHERE code LIKE 'W%'").fetchone()[0] == 7


async def test_a_script_in_a_transaction_begun_before_runs_in_the_thread():
    """A DEFERRED transaction's first write may wait for the lock: never on the event loop."""
    from library import db

    if not db.is_sqlite():
        pytest.skip("SQLite's single writer")
    engine = db.engine()
    before = engine._loop_commits

    async def work():
        await Branch.raw("SELECT 1")  # BEGIN has gone
        return await run_script(one_branch_script("TT"))

    await run_in_write_transaction(work)
    async with engine.transaction():  # DEFERRED
        await run_script(one_branch_script("UU"), commit=False)
    assert engine._loop_commits == before
    assert await codes() == ["TT", "UU"]


def one_branch_script(code: str):
    rows, = yield [Statement(INSERT + " RETURNING code", branch_row(code))]
    return rows[0]["code"]


async def test_a_read_now_gives_the_rows_and_leaves_the_connection_as_it_found_it():
    from library.db import engine, is_sqlite, read_now

    await run_in_write_transaction(lambda: run_script(one_branch_script("RN")), begin_with_first_statement=True)
    rows = await read_now(Statement("SELECT code, name_en FROM branch WHERE code = {}", ("RN",)))
    assert rows == [{"code": "RN", "name_en": "RN"}]
    assert await read_now(Statement("SELECT code FROM branch WHERE code = {}", ("nobody",))) == []
    if is_sqlite():
        connection = await engine().get_connection()
        try:
            assert (await connection.execute_fetchall("PRAGMA busy_timeout"))[0]["timeout"] > 0
            assert not connection.in_transaction
        finally:
            await engine().release(connection)


async def test_a_read_now_sees_the_last_commit_while_another_process_holds_the_write_lock():
    """SQLite, WAL: a reader never waits for the writer, so the read on the event loop never stalls
    it; what the other process has not committed is not seen."""
    import sqlite3

    from library.db import engine, is_sqlite, read_now

    if not is_sqlite():
        pytest.skip("SQLite's single writer")
    await run_in_write_transaction(lambda: run_script(one_branch_script("R1")), begin_with_first_statement=True)
    other = sqlite3.connect(engine().path, isolation_level=None)  # e.g. `library catalog import` in a shell
    other.execute("BEGIN IMMEDIATE")
    try:
        other.execute("INSERT INTO branch (uuid, code, name_zh, name_en) VALUES (?, ?, ?, ?)", branch_row("R2"))
        rows = await read_now(Statement("SELECT code FROM branch WHERE code IN ({}, {}) ORDER BY code", ("R1", "R2")))
        assert rows == [{"code": "R1"}]
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_read_now_that_finds_the_file_busy_reads_in_the_connection_thread(monkeypatch):
    """The rare busy WAL (a checkpoint restarting it): the read goes where waiting is allowed."""
    from library import db

    if not db.is_sqlite():
        pytest.skip("SQLite's WAL")
    calls = []

    def busy(connection, sql, args, busy_timeout_ms):
        calls.append(sql)
        return None

    monkeypatch.setattr(db, "_read_at_once", busy)
    await run_in_write_transaction(lambda: run_script(one_branch_script("RB")), begin_with_first_statement=True)
    rows = await db.read_now(Statement("SELECT code FROM branch WHERE code = {}", ("RB",)))
    assert rows == [{"code": "RB"}] and len(calls) == 1
