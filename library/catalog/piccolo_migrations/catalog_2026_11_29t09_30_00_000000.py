"""The bulk-load mark: an import batch indexes its new records in one statement (written by hand).

`catalog_bulk_load` holds a row only inside an import batch's write transaction: the batch
inserts it before its first insert and deletes it before it commits (a rollback removes it
too), so no other transaction ever sees it. While it is there, the per-row FTS insert
trigger stands aside and the batch indexes exactly the rows it inserted with one
INSERT ... SELECT, in the same transaction (library/catalog/exchange.py, `_apply`). Every
other write path still goes through the trigger. The sync app's change-log triggers on
record and item inserts look at the same table (sync migration 2026-11-29T09:31:00).

PostgreSQL keeps its full-text vector in a generated column: there is no trigger to change,
only the table to create.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T09:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "bulk-load mark; the FTS insert trigger stands aside inside an import batch"

BOTH = ["CREATE TABLE catalog_bulk_load (id INTEGER PRIMARY KEY)"]
SQLITE = [
    "DROP TRIGGER record_fts_insert",
    "CREATE TRIGGER record_fts_insert AFTER INSERT ON record "
    "WHEN NOT EXISTS (SELECT 1 FROM catalog_bulk_load) BEGIN "
    "INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
SQLITE_BACK = [
    "DROP TRIGGER record_fts_insert",
    "CREATE TRIGGER record_fts_insert AFTER INSERT ON record BEGIN "
    "INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
BOTH_BACK = ["DROP TABLE catalog_bulk_load"]
SYNC_USES_IT = "2026-11-29T09:31:00:000000"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)

    async def run(statements_for_engine):
        engine = engine_finder()
        for statement in statements_for_engine(isinstance(engine, SQLiteEngine)):
            await engine.run_ddl(statement)

    async def forward():
        await run(lambda sqlite: BOTH + (SQLITE if sqlite else []))

    async def backward():
        # The sync app's insert triggers read the table too: without it every record and copy
        # insert would fail. Piccolo rolls an app back alone, so refuse instead.
        rows = await engine_finder().run_ddl(
            f"SELECT name FROM migration WHERE app_name = 'sync' AND name = '{SYNC_USES_IT}'")
        if rows:
            raise RuntimeError(f"roll back the sync app's migration {SYNC_USES_IT} first "
                               "(its triggers read catalog_bulk_load)")
        await run(lambda sqlite: (SQLITE_BACK if sqlite else []) + BOTH_BACK)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
