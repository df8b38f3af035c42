"""PostgreSQL: record and item INSERTs of a catalogue import batch do not even call the logging function (written by hand).

Measured after 2026-11-29T09:31:00: on PostgreSQL the per-row trigger still ran its PL/pgSQL
function for every inserted row just to find the bulk-load mark and return, which cost about
as much as logging did. Here the INSERT gets a trigger of its own whose WHEN (no subquery is
allowed there) reads a transaction-local setting the import batch sets together with its
mark (`set_config('library.catalog_bulk_load', 'on', true)`: it ends with the transaction,
commit or rollback, so no other transaction ever sees it). Updates and deletes keep the
trigger they had. SQLite is unchanged: its trigger's WHEN already reads the mark.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T09:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "PostgreSQL: record and item insert logging skips an import batch in the trigger's WHEN"

SETTING = "library.catalog_bulk_load"


def statements(forward: bool) -> list[str]:
    made = []
    for table in ("record", "item"):
        if forward:
            made += [
                f"DROP TRIGGER sync_log_{table} ON {table}",
                f"CREATE TRIGGER sync_log_{table} AFTER UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION sync_log_{table}()",
                f"CREATE TRIGGER sync_log_{table}_insert AFTER INSERT ON {table} FOR EACH ROW "
                f"WHEN (current_setting('{SETTING}', true) IS DISTINCT FROM 'on') "
                f"EXECUTE FUNCTION sync_log_{table}()",
            ]
        else:
            made += [
                f"DROP TRIGGER sync_log_{table}_insert ON {table}",
                f"DROP TRIGGER sync_log_{table} ON {table}",
                f"CREATE TRIGGER sync_log_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION sync_log_{table}()",
            ]
    return made


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="sync", description=DESCRIPTION)

    async def run(forward: bool):
        engine = engine_finder()
        if isinstance(engine, SQLiteEngine):
            return
        for statement in statements(forward):
            await engine.run_ddl(statement)

    async def forward():
        await run(True)

    async def backward():
        await run(False)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
