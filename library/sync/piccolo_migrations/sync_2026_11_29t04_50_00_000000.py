"""The change log's triggers and the one row of sync state (written by hand: Piccolo has no triggers).

Every insert, update and delete on a replicated table logs (kind, uuid, branches) into
`sync_change`, unless this transaction is applying the central node's changes on a branch
(`sync_state.applying`, set and cleared inside that transaction, so no other sees it).

PostgreSQL hands out sequence numbers in the order transactions start writing, not the
order they commit: a reader could see change 11 before change 10 commits and move its
cursor past 10 for ever. The trigger takes a transaction-scoped advisory lock first, so
writers of replicated rows commit one after another and `seq` order is commit order.
SQLite has one writer at a time already.
"""

from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T04:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "change-log triggers on replicated tables; the sync state row"

ADVISORY_LOCK = 747001

# table -> (kind, how the entity's uuid is found, the branch columns it touches)
LOGGED = {
    "branch": ("branch", "uuid", ()),
    "opening_period": ("branch", "branch", ()),
    "calendar_exception": ("branch", "branch", ()),
    "circulation_rule": ("circulation_rule", "uuid", ("branch",)),
    "patron": ("patron", "uuid", ("home_branch",)),
    "guardian_link": ("guardian_link", "uuid", ()),
    "record": ("record", "uuid", ()),
    "item": ("item", "uuid", ("home_branch", "current_branch")),
    "loan": ("loan", "uuid", ("branch", "returned_branch")),
    "hold": ("hold", "uuid", ("pickup_branch",)),
    "transit": ("transit", "uuid", ("from_branch", "to_branch")),
    "transfer": ("transfer", "uuid", ("from_branch", "to_branch")),
}


def _sqlite(table: str, kind: str, key: str, branch_columns: tuple[str, ...]) -> list[str]:
    statements = []
    for operation, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))):
        row = rows[-1]
        uuid = f"{row}.uuid" if key == "uuid" else f"(SELECT uuid FROM branch WHERE id = {row}.branch)"
        parts = [f"COALESCE({r}.{column}, '')" for r in rows for column in branch_columns]
        branches = " || '|' || ".join(parts) if parts else "''"
        branches = f"'|' || {branches} || '|'" if parts else "''"
        statements.append(
            f"CREATE TRIGGER sync_log_{table}_{operation.lower()} AFTER {operation} ON {table} "
            f"WHEN (SELECT applying FROM sync_state WHERE id = 1) IS NOT 1 AND {uuid} IS NOT NULL "
            f"BEGIN INSERT INTO sync_change (kind, entity_uuid, branches) VALUES ('{kind}', {uuid}, {branches}); END"
        )
    return statements


def _postgres(table: str, kind: str, key: str, branch_columns: tuple[str, ...]) -> list[str]:
    def values(rows: tuple[str, ...]) -> str:
        row = rows[-1]
        uuid = f"{row}.uuid::text" if key == "uuid" else f"(SELECT uuid::text FROM branch WHERE id = {row}.branch)"
        parts = [f"{r}.{column}" for r in rows for column in branch_columns]
        branches = f"'|' || concat_ws('|', {', '.join(parts)}) || '|'" if parts else "''"
        return f"u := {uuid}; b := {branches};"

    return [
        f"""CREATE OR REPLACE FUNCTION sync_log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE u text; b text;
BEGIN
  IF EXISTS (SELECT 1 FROM sync_state WHERE id = 1 AND applying) THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN {values(("NEW",))}
  ELSIF TG_OP = 'UPDATE' THEN {values(("OLD", "NEW"))}
  ELSE {values(("OLD",))}
  END IF;
  IF u IS NULL THEN RETURN NULL; END IF;
  PERFORM pg_advisory_xact_lock({ADVISORY_LOCK});
  INSERT INTO sync_change (kind, entity_uuid, branches) VALUES ('{kind}', u, b);
  RETURN NULL;
END $$""",
        f"CREATE TRIGGER sync_log_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION sync_log_{table}()",
    ]


def statements(sqlite: bool) -> list[str]:
    made = ["INSERT INTO sync_state (id, applying, cursor, last_error, uploaded_through) VALUES (1, false, '', '', 0)",
            "CREATE INDEX sync_change_entity_idx ON sync_change (kind, entity_uuid)"]
    for table, (kind, key, branch_columns) in LOGGED.items():
        made += (_sqlite if sqlite else _postgres)(table, kind, key, branch_columns)
    return made


def backwards_statements(sqlite: bool) -> list[str]:
    dropped = ["DROP INDEX sync_change_entity_idx", "DELETE FROM sync_state"]
    for table in LOGGED:
        if sqlite:
            dropped += [f"DROP TRIGGER sync_log_{table}_{operation}" for operation in ("insert", "update", "delete")]
        else:
            dropped += [f"DROP TRIGGER sync_log_{table} ON {table}", f"DROP FUNCTION sync_log_{table}()"]
    return dropped


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="sync", description=DESCRIPTION)

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
