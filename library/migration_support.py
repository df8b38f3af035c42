"""A migration manager whose constraints work on SQLite too.

Piccolo 1.38 creates a table on SQLite and then adds its constraints with
`ALTER TABLE ... ADD CONSTRAINT`, which SQLite does not have ("near CONSTRAINT:
syntax error"). Every migration of this project uses `PortableMigrationManager`
instead of `MigrationManager` (the one hand edit made to a generated migration,
checked by a test). On PostgreSQL it is Piccolo's manager, unchanged. On SQLite a
unique constraint becomes a unique index and a check constraint a pair of
triggers, both enforced by the database just the same.
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
