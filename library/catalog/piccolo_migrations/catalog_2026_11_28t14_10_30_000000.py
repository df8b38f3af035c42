"""The full-text index of records and the indexes item look-ups need (written by hand).

SQLite: an FTS5 table over record.search_text with triggers that keep it in step
with every insert, update and delete. PostgreSQL: a generated tsvector column
('simple' configuration) over the same text with a GIN index; the database keeps both.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-28T14:10:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "full-text index of records; item indexes"

SQLITE = [
    "CREATE VIRTUAL TABLE record_fts USING fts5(search_text, content='record', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER record_fts_insert AFTER INSERT ON record BEGIN "
    "INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER record_fts_delete AFTER DELETE ON record BEGIN "
    "INSERT INTO record_fts(record_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER record_fts_update AFTER UPDATE OF search_text ON record BEGIN "
    "INSERT INTO record_fts(record_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
POSTGRES = [
    "ALTER TABLE record ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED",
    "CREATE INDEX record_search_idx ON record USING GIN (search_vector)",
]
BOTH = [
    "CREATE INDEX item_record_idx ON item (record)",
    "CREATE INDEX item_branch_status_idx ON item (current_branch, status)",
    "CREATE INDEX record_year_idx ON record (publication_year)",
]
SQLITE_BACK = ["DROP TRIGGER record_fts_update", "DROP TRIGGER record_fts_delete", "DROP TRIGGER record_fts_insert",
               "DROP TABLE record_fts"]
POSTGRES_BACK = ["DROP INDEX record_search_idx", "ALTER TABLE record DROP COLUMN search_vector"]
BOTH_BACK = ["DROP INDEX item_record_idx", "DROP INDEX item_branch_status_idx", "DROP INDEX record_year_idx"]


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)

    async def run(statements_for_engine):
        engine = engine_finder()
        sqlite = isinstance(engine, SQLiteEngine)
        for statement in statements_for_engine(sqlite):
            await engine.run_ddl(statement)

    async def forward():
        await run(lambda sqlite: (SQLITE if sqlite else POSTGRES) + BOTH)

    async def backward():
        await run(lambda sqlite: BOTH_BACK + (SQLITE_BACK if sqlite else POSTGRES_BACK))

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
