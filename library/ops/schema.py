"""The schema's migrations: those this release has, and those a database still needs."""

from __future__ import annotations

from dataclasses import dataclass

from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.tables import Migration
from piccolo.conf.apps import Finder


@dataclass(frozen=True)
class Pending:
    app: str
    id: str
    description: str


def known_migrations() -> dict[str, dict[str, str]]:
    """The migrations this release has, by app: id -> description."""
    manager = BaseMigrationManager()
    return {name: {migration_id: getattr(module, "DESCRIPTION", "") or ""
                   for migration_id, module in manager.get_migration_modules(config.migrations_folder_path).items()}
            for name, config in Finder().get_app_registry().app_configs.items()}


async def pending_migrations() -> list[Pending]:
    """What `library migrate` would run on the configured database, in the order it would."""
    applied: set[tuple[str, str]] = set()
    if await Migration.table_exists():
        applied = {(row["app_name"], row["name"]) for row in await Migration.select(Migration.app_name, Migration.name)}
    return [Pending(app, migration_id, description)
            for app, migrations in known_migrations().items()
            for migration_id, description in sorted(migrations.items()) if (app, migration_id) not in applied]
