"""An index on record titles: an exact title match is looked up on every search (written by hand)."""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-11-28T14:55:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index record titles"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)

    async def forward():
        await engine_finder().run_ddl("CREATE INDEX record_title_idx ON record (title)")

    async def backward():
        await engine_finder().run_ddl("DROP INDEX record_title_idx")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
