"""The full-text index in four sections, and every record's search text made again (written by hand).

A record's `search_text` now holds four sections — title, authors, subjects, the rest —
separated by " | " (library.catalog.search_text), and its letters keep their accents as
letters ("España" was indexed as "espa a"). The database indexes each section apart, so
that `ti:`, `au:` and `su:` can search one and a title weighs more in the ranking:

- SQLite: the view `record_search` cuts the text into its sections; the FTS5 table
  `record_fts` has a column for each, with the view as its external content (the search
  weighs them in its bm25: library.catalog.search.BM25). The triggers read the
  view: BEFORE a delete or a change of the text, the old row is taken out of the index,
  AFTER an insert or a change the new one put in (the insert trigger still stands aside
  inside an import batch, which indexes its rows with search.SQLITE_INDEX_INSERTED).
  `record_fts_words` (fts5vocab) is the index's vocabulary, for "did you mean".
- PostgreSQL: the generated `search_vector` weighs each section's words A, B, C, D.

A text without separators (from a node that has not had this migration) is all title on
both engines. The search text of every record is made again here, with the index dropped
first so that no trigger or generated column works row by row, and without the sync change
log: every node makes its own (library.catalog.search.reindex).
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-12-07T08:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "full-text index in sections (title, authors, subjects, the rest); search text made again"

_COLUMNS = "title, author, subject, other"
# Section n of the text t is what lies between the (n-1)th and the nth "|" of t || '||||'.
_VIEW = (
    f"CREATE VIEW record_search (id, {_COLUMNS}) AS "
    "SELECT id, trim(substr(t, 1, a - 1)), trim(substr(t, a + 1, b - a - 1)), trim(substr(t, b + 1, c - b - 1)), "
    "trim(substr(t, c + 1, d - c - 1)) FROM "
    "(SELECT id, t, a, b, c, c + instr(substr(t, c + 1), '|') AS d FROM "
    "(SELECT id, t, a, b, b + instr(substr(t, b + 1), '|') AS c FROM "
    "(SELECT id, t, a, a + instr(substr(t, a + 1), '|') AS b FROM "
    "(SELECT id, search_text || '||||' AS t, instr(search_text || '||||', '|') AS a FROM record))))"
)
_FROM_VIEW = f"SELECT id, {_COLUMNS} FROM record_search"
_DELETE_FROM_VIEW = f"SELECT 'delete', id, {_COLUMNS} FROM record_search"
SQLITE_DROP_OLD = ["DROP TRIGGER IF EXISTS record_fts_insert", "DROP TRIGGER IF EXISTS record_fts_delete",
                   "DROP TRIGGER IF EXISTS record_fts_update", "DROP TABLE IF EXISTS record_fts"]
SQLITE = [
    _VIEW,
    f"CREATE VIRTUAL TABLE record_fts USING fts5({_COLUMNS}, content='record_search', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO record_fts (record_fts) VALUES ('rebuild')",
    "CREATE TRIGGER record_fts_insert AFTER INSERT ON record WHEN NOT EXISTS (SELECT 1 FROM catalog_bulk_load) "
    f"BEGIN INSERT INTO record_fts (rowid, {_COLUMNS}) {_FROM_VIEW} WHERE id = new.id; END",
    "CREATE TRIGGER record_fts_delete BEFORE DELETE ON record BEGIN "
    f"INSERT INTO record_fts (record_fts, rowid, {_COLUMNS}) {_DELETE_FROM_VIEW} WHERE id = old.id; END",
    "CREATE TRIGGER record_fts_unindex BEFORE UPDATE OF search_text ON record BEGIN "
    f"INSERT INTO record_fts (record_fts, rowid, {_COLUMNS}) {_DELETE_FROM_VIEW} WHERE id = old.id; END",
    "CREATE TRIGGER record_fts_reindex AFTER UPDATE OF search_text ON record BEGIN "
    f"INSERT INTO record_fts (rowid, {_COLUMNS}) {_FROM_VIEW} WHERE id = new.id; END",
    "CREATE VIRTUAL TABLE record_fts_words USING fts5vocab(record_fts, 'col')",
]
POSTGRES_DROP_OLD = ["DROP INDEX IF EXISTS record_search_idx", "ALTER TABLE record DROP COLUMN IF EXISTS search_vector"]
_SECTION = "setweight(to_tsvector('simple', split_part(search_text || '||||', '|', {n})), '{weight}')"
POSTGRES = [
    "ALTER TABLE record ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    + " || ".join(_SECTION.format(n=n, weight=weight) for n, weight in enumerate("ABCD", start=1)) + ") STORED",
    "CREATE INDEX record_search_idx ON record USING GIN (search_vector)",
]

# Backwards: the index of migrations 2026-11-28T14:10:30 and 2026-11-29T09:30:00, one column
# over the whole text (the separators are no words to it).
SQLITE_BACK = [
    "DROP TABLE IF EXISTS record_fts_words", "DROP TRIGGER IF EXISTS record_fts_reindex",
    "DROP TRIGGER IF EXISTS record_fts_unindex", "DROP TRIGGER IF EXISTS record_fts_delete",
    "DROP TRIGGER IF EXISTS record_fts_insert", "DROP TABLE IF EXISTS record_fts", "DROP VIEW IF EXISTS record_search",
    "CREATE VIRTUAL TABLE record_fts USING fts5(search_text, content='record', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO record_fts (record_fts) VALUES ('rebuild')",
    "CREATE TRIGGER record_fts_insert AFTER INSERT ON record WHEN NOT EXISTS (SELECT 1 FROM catalog_bulk_load) "
    "BEGIN INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER record_fts_delete AFTER DELETE ON record BEGIN "
    "INSERT INTO record_fts(record_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER record_fts_update AFTER UPDATE OF search_text ON record BEGIN "
    "INSERT INTO record_fts(record_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO record_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
POSTGRES_BACK = POSTGRES_DROP_OLD + [
    "ALTER TABLE record ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED",
    "CREATE INDEX record_search_idx ON record USING GIN (search_vector)",
]


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)

    async def run(statements):
        engine = engine_finder()
        for statement in statements:
            await engine.run_ddl(statement)

    async def forward():
        from library.catalog.search import reindex

        sqlite = isinstance(engine_finder(), SQLiteEngine)
        await run(SQLITE_DROP_OLD if sqlite else POSTGRES_DROP_OLD)
        await reindex()
        await run(SQLITE if sqlite else POSTGRES)

    async def backward():
        await run(SQLITE_BACK if isinstance(engine_finder(), SQLiteEngine) else POSTGRES_BACK)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
