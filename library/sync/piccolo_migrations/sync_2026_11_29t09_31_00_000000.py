"""Record and item inserts of a catalogue import batch are logged by the batch, set-based (written by hand).

While `catalog_bulk_load` has a row — only inside an import batch's write transaction, see
catalog migration 2026-11-29T09:30:00 — the per-row change-log triggers on record and item
INSERTs stand aside, and the batch logs exactly the rows it inserted with one
INSERT ... SELECT each, in the same transaction, with the same values, the same `applying`
condition and (PostgreSQL) the same advisory lock (library/catalog/exchange.py, `_apply`).
Updates and deletes, and inserts anywhere else, are logged row by row as before.

Runs after the catalog app's migrations (sync depends on loans, which depends on catalog),
so the table exists when these triggers are made. Its ID differs from the catalog one's:
Piccolo forgets a migration run backwards by ID alone, whatever its app.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T09:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "record and item insert logging stands aside inside a catalogue import batch"

ADVISORY_LOCK = 747001
BULK = "EXISTS (SELECT 1 FROM catalog_bulk_load)"
# table -> (kind, branches of NEW on SQLite, branches of (OLD,) NEW, OLD on PostgreSQL)
TABLES = {
    "record": ("record", "''", ("''", "''", "''")),
    "item": ("item", "'|' || COALESCE(NEW.home_branch, '') || '|' || COALESCE(NEW.current_branch, '') || '|'", (
        "'|' || concat_ws('|', NEW.home_branch, NEW.current_branch) || '|'",
        "'|' || concat_ws('|', OLD.home_branch, OLD.current_branch, NEW.home_branch, NEW.current_branch) || '|'",
        "'|' || concat_ws('|', OLD.home_branch, OLD.current_branch) || '|'")),
}


def _sqlite(table: str, bulk_aware: bool) -> list[str]:
    kind, branches, _ = TABLES[table]
    extra = f" AND NOT {BULK}" if bulk_aware else ""
    return [
        f"DROP TRIGGER sync_log_{table}_insert",
        f"CREATE TRIGGER sync_log_{table}_insert AFTER INSERT ON {table} "
        f"WHEN (SELECT applying FROM sync_state WHERE id = 1) IS NOT 1 AND NEW.uuid IS NOT NULL{extra} "
        f"BEGIN INSERT INTO sync_change (kind, entity_uuid, branches) VALUES ('{kind}', NEW.uuid, {branches}); END",
    ]


def _postgres(table: str, bulk_aware: bool) -> list[str]:
    kind, _, (inserted, updated, deleted) = TABLES[table]
    # A trigger's WHEN cannot hold a subquery on PostgreSQL: the function looks instead.
    stand_aside = f"\n    IF {BULK} THEN RETURN NULL; END IF;" if bulk_aware else ""
    return [f"""CREATE OR REPLACE FUNCTION sync_log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE u text; b text;
BEGIN
  IF EXISTS (SELECT 1 FROM sync_state WHERE id = 1 AND applying) THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN{stand_aside}
    u := NEW.uuid::text; b := {inserted};
  ELSIF TG_OP = 'UPDATE' THEN u := NEW.uuid::text; b := {updated};
  ELSE u := OLD.uuid::text; b := {deleted};
  END IF;
  IF u IS NULL THEN RETURN NULL; END IF;
  PERFORM pg_advisory_xact_lock({ADVISORY_LOCK});
  INSERT INTO sync_change (kind, entity_uuid, branches) VALUES ('{kind}', u, b);
  RETURN NULL;
END $$"""]


def statements(sqlite: bool, bulk_aware: bool) -> list[str]:
    return [statement for table in TABLES for statement in (_sqlite if sqlite else _postgres)(table, bulk_aware)]


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="sync", description=DESCRIPTION)

    async def run(bulk_aware: bool):
        engine = engine_finder()
        for statement in statements(isinstance(engine, SQLiteEngine), bulk_aware):
            await engine.run_ddl(statement)

    async def forward():
        await run(True)

    async def backward():
        await run(False)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
