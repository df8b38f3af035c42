"""The change log's triggers on pin_change (written by hand: Piccolo has no triggers).

A PIN set at a branch node travels to the central node as its own kind of upload
(`pin_change`, see library/accounts/tables.py PinChange), so its rows are logged like every
other replicated table's: the same triggers as migration 2026-11-29T04:50:00 makes.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager
from library.sync.piccolo_migrations.sync_2026_11_29t04_50_00_000000 import _postgres, _sqlite

ID = "2026-12-07T04:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "change-log triggers on pin_change"

TABLE, KIND, KEY, BRANCH_COLUMNS = "pin_change", "pin_change", "uuid", ("branch",)


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="sync", description=DESCRIPTION)

    async def forward():
        engine = engine_finder()
        make = _sqlite if isinstance(engine, SQLiteEngine) else _postgres
        for statement in make(TABLE, KIND, KEY, BRANCH_COLUMNS):
            await engine.run_ddl(statement)

    async def backward():
        engine = engine_finder()
        if isinstance(engine, SQLiteEngine):
            for operation in ("insert", "update", "delete"):
                await engine.run_ddl(f"DROP TRIGGER sync_log_{TABLE}_{operation}")
        else:
            await engine.run_ddl(f"DROP TRIGGER sync_log_{TABLE} ON {TABLE}")
            await engine.run_ddl(f"DROP FUNCTION sync_log_{TABLE}()")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
