"""Rebuild the search text of every record: pairs of Chinese characters are now indexed too
(a data migration, written by hand; `library catalog reindex` does the same on demand)."""

from library.migration_support import PortableMigrationManager

ID = "2026-11-28T15:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index pairs of Chinese characters"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)

    async def forward():
        from library.catalog.service import reindex

        await reindex()

    manager.add_raw(forward)
    return manager
