from library.migration_support import PortableMigrationManager

ID = "2026-11-28T13:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "start the catalog app; its tables arrive with its own issue"


async def forwards():
    return PortableMigrationManager(migration_id=ID, app_name="catalog", description=DESCRIPTION)
