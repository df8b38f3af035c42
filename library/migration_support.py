"""A migration manager whose constraints work on SQLite too.

Piccolo 1.38 creates a table on SQLite and then adds its constraints with
`ALTER TABLE ... ADD CONSTRAINT`, which SQLite does not have ("near CONSTRAINT:
syntax error"). Every migration of this project uses `PortableMigrationManager`
instead of `MigrationManager` (the one hand edit made to a generated migration,
checked by a test). On PostgreSQL it is Piccolo's manager, unchanged. On SQLite a
unique constraint becomes a unique index and a check constraint a pair of
triggers, both enforced by the database just the same. SQLite has no ALTER COLUMN either:
there a column that stops (or starts) being unique or changes type is altered by rebuilding
its table (`sqlite_rebuild`), and an index is created or dropped with its own statement.
"""

from __future__ import annotations

import re

from piccolo.apps.migrations.auto.migration_manager import AddConstraintCollection, MigrationManager
from piccolo.constraints import Check, Constraint, Unique
from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine


def sqlite_statements(tablename: str, constraint: Constraint) -> list[str]:
    name = constraint._meta.name
    if isinstance(constraint, Unique):
        columns = ", ".join(f'"{column}"' for column in constraint._meta.params["columns"])
        return [f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}" ON "{tablename}" ({columns})']
    if isinstance(constraint, Check):
        condition = re.sub(r'"(\w+)"', r'NEW."\1"', constraint._meta.params["condition"])
        return [
            f'CREATE TRIGGER IF NOT EXISTS "{name}_{event.lower()}" BEFORE {event} ON "{tablename}" '
            f"WHEN NOT ({condition}) BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END"
            for event in ("INSERT", "UPDATE")
        ]
    raise NotImplementedError(f"no SQLite form for {type(constraint).__name__}")


# What an altered column may change on SQLite (anything else needs a hand-written migration).
SQLITE_ALTERABLE = {"unique", "index"}


def _column_definitions(create_sql: str) -> tuple[str, list[str], str]:
    """A Piccolo CREATE TABLE statement as (head, column definitions, tail)."""
    open_at, close_at = create_sql.index("("), create_sql.rindex(")")
    # Piccolo writes each definition as '"name" TYPE ...', separated by ', ': split before every
    # quoted name that follows a comma (no default or check Piccolo writes contains ', "').
    return create_sql[:open_at + 1], re.split(r', (?=")', create_sql[open_at + 1:close_at]), create_sql[close_at:]


def altered_definition(definition: str, unique: bool | None, column_type: str | None) -> str:
    """One column's definition with its UNIQUE and type changed as asked (None: unchanged)."""
    name, rest = definition.split(" ", 1)
    current_type, rest = rest.split(" ", 1) if " " in rest else (rest, "")
    if unique is False:
        rest = re.sub(r"\bUNIQUE\b ?", "", rest)
    elif unique is True and not re.search(r"\bUNIQUE\b", rest):
        rest = "UNIQUE " + rest
    return " ".join(part for part in (name, column_type or current_type, rest.strip()) if part)


async def sqlite_rebuild(engine, tablename: str, changes: dict[str, tuple[bool | None, str | None]]) -> None:
    """Rebuild a table with some columns' UNIQUE and type changed ({column: (unique, type)}),
    keeping its rows, ids, indexes and triggers, inside the migration's transaction.

    SQLite's own recipe (create the new table, copy, drop the old one, rename) needs foreign
    keys off, which a migration's transaction cannot turn off: dropping the old table with them
    on runs its children's ON DELETE actions (a CASCADE would empty `hold`). So the old table is
    renamed away, which makes its children's REFERENCES name it; the new table is made under
    the old name and filled; the children's REFERENCES are pointed back at that name by
    editing their SQL in sqlite_schema (writable_schema, as SQLite's ALTER TABLE page describes
    for changes that leave the file's content as it is: a REFERENCES clause is only text); and
    the old table, childless now, is dropped with its indexes and triggers, which are made
    again, from their own SQL, on the new one. Foreign keys and integrity are checked before
    the migration commits."""
    rows = await engine.run_ddl(f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name = '{tablename}'")
    create = next(row["sql"] for row in rows if row["type"] == "table")
    others = [row["sql"] for row in rows if row["type"] in ("index", "trigger") and row["sql"]]
    head, definitions, tail = _column_definitions(create)
    for i, definition in enumerate(definitions):
        column = definition.split(" ", 1)[0].strip('"')
        if column in changes:
            definitions[i] = altered_definition(definition, *changes[column])
    old = f"{tablename}__before_rebuild"
    await engine.run_ddl(f'ALTER TABLE "{tablename}" RENAME TO "{old}"')
    await engine.run_ddl(head + ", ".join(definitions) + tail)
    await engine.run_ddl(f'INSERT INTO "{tablename}" SELECT * FROM "{old}"')
    version = (await engine.run_ddl("PRAGMA schema_version"))[0]["schema_version"]
    await engine.run_ddl("PRAGMA writable_schema = ON")
    try:
        await engine.run_ddl(f"""UPDATE sqlite_master SET sql = replace(sql, 'REFERENCES "{old}"', """
                             f"""'REFERENCES "{tablename}"') WHERE type = 'table' AND sql LIKE '%REFERENCES "{old}"%'""")
        await engine.run_ddl(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        await engine.run_ddl("PRAGMA writable_schema = OFF")
    await engine.run_ddl(f'DROP TABLE "{old}"')
    for sql in others:
        await engine.run_ddl(sql)
    problems = await engine.run_ddl("PRAGMA foreign_key_check") + [
        row for row in await engine.run_ddl("PRAGMA integrity_check") if row.get("integrity_check") != "ok"]
    if problems:
        raise RuntimeError(f"rebuilding {tablename} left problems: {problems[:5]}")


class PortableMigrationManager(MigrationManager):
    def _on_sqlite(self) -> bool:
        return isinstance(engine_finder(), SQLiteEngine)

    async def _run_add_tables(self, backwards: bool = False):
        if backwards or not self._on_sqlite():
            return await super()._run_add_tables(backwards=backwards)
        constraints, self.add_constraints = self.add_constraints, AddConstraintCollection()
        try:
            await super()._run_add_tables(backwards=backwards)
        finally:
            self.add_constraints = constraints

    async def _run_add_constraints(self, backwards: bool = False):
        if backwards or not self._on_sqlite():
            return await super()._run_add_constraints(backwards=backwards)
        engine = engine_finder()
        for add in self.add_constraints.add_constraints:
            for statement in sqlite_statements(add.tablename, add.constraint):
                if self.preview:
                    print(statement)
                else:
                    await engine.run_ddl(statement)

    async def _run_alter_columns(self, backwards: bool = False):
        if not self._on_sqlite():
            return await super()._run_alter_columns(backwards=backwards)
        engine = engine_finder()
        for table_class_name in self.alter_columns.table_class_names:
            alters = self.alter_columns.for_table_class_name(table_class_name)
            if not alters:
                continue
            tablename = alters[0].tablename
            changes: dict[str, tuple[bool | None, str | None]] = {}
            indexes: list[tuple[str, bool]] = []
            for alter in alters:
                params = alter.old_params if backwards else alter.params
                column_class = alter.old_column_class if backwards else alter.column_class
                other_class = alter.column_class if backwards else alter.old_column_class
                unknown = set(params) - SQLITE_ALTERABLE
                if unknown:
                    raise NotImplementedError(f"altering {tablename}.{alter.db_column_name} ({', '.join(sorted(unknown))}) "
                                              "on SQLite: write the migration by hand")
                column_type = None
                if column_class is not None and other_class is not None and column_class is not other_class:
                    column_type = column_class().column_type
                if "unique" in params or column_type:
                    changes[alter.db_column_name] = (params.get("unique"), column_type)
                if "index" in params:
                    indexes.append((alter.db_column_name, bool(params["index"])))
            if self.preview:
                print(f"SQLite: rebuild {tablename} for {changes}; indexes {indexes}")
                continue
            if changes:
                await sqlite_rebuild(engine, tablename, changes)
            for column, wanted in indexes:
                name = f"{tablename}_{column}"  # the name Piccolo gives it on PostgreSQL
                await engine.run_ddl(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{tablename}" ("{column}")' if wanted
                                     else f'DROP INDEX IF EXISTS "{name}"')
