"""The configuration version that per-process caches of branches, calendars and circulation rules
check (see library/config_cache.py). Written by hand: Piccolo has no triggers.

`config_version` is not a Piccolo table on purpose: nothing that empties or copies the
Piccolo tables (tests, sync) should remove its one row. Each insert, update or delete of a
configuration row sets a new random version — random, not +1, so that a value seen inside a
transaction that then rolled back can never come back with other contents.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T05:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "config_version, changed by triggers on branch, opening_period, calendar_exception, circulation_rule"

TABLES = ("branch", "opening_period", "calendar_exception", "circulation_rule")
OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def statements(sqlite: bool) -> list[str]:
    made = ["CREATE TABLE config_version (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
            "INSERT INTO config_version (id, version) VALUES (1, 1)"]
    if sqlite:
        # SQLite's triggers are per row and per operation.
        for table in TABLES:
            made += [f"CREATE TRIGGER config_version_{table}_{operation.lower()} AFTER {operation} ON {table} "
                     "BEGIN UPDATE config_version SET version = random() WHERE id = 1; END"
                     for operation in OPERATIONS]
        return made
    made.append("""CREATE FUNCTION config_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE config_version SET version = floor(random() * 9007199254740991)::bigint WHERE id = 1;
  RETURN NULL;
END $$""")
    made += [f"CREATE TRIGGER config_version_{table} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
             "FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()" for table in TABLES]
    return made


def backwards_statements(sqlite: bool) -> list[str]:
    if sqlite:
        dropped = [f"DROP TRIGGER config_version_{table}_{operation.lower()}"
                   for table in TABLES for operation in OPERATIONS]
    else:
        dropped = [f"DROP TRIGGER config_version_{table} ON {table}" for table in TABLES]
        dropped.append("DROP FUNCTION config_version_bump()")
    return [*dropped, "DROP TABLE config_version"]


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="loans", description=DESCRIPTION)

    async def forward():
        engine = engine_finder()
        for statement in statements(isinstance(engine, SQLiteEngine)):
            await engine.run_ddl(statement)

    async def backward():
        engine = engine_finder()
        for statement in backwards_statements(isinstance(engine, SQLiteEngine)):
            await engine.run_ddl(statement)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
