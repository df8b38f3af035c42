"""An index on transfer.item: every plain return looks for a rotation to close (written by hand)."""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-11-29T06:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index on transfer.item"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="sync", description=DESCRIPTION)

    async def forward():
        await engine_finder().run_ddl("CREATE INDEX transfer_item_idx ON transfer (item)")

    async def backward():
        await engine_finder().run_ddl("DROP INDEX transfer_item_idx")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
