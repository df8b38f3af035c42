"""The notice outbox leaves the loans app for library.notices (issue 18, part 7), keeping its table.

Written by hand: to Piccolo's record of the loans app the `notice` table is dropped (so that
`migrations new loans --auto` no longer sees it), but the table and its rows stay in the
database: the notices app's first migration takes them over.
"""

from library.migration_support import PortableMigrationManager

ID = "2026-12-07T18:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the notice outbox passes to the notices app (the table and its rows stay)"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="loans", description=DESCRIPTION)
    manager.drop_table(class_name="Notice", tablename="notice", schema=None)

    async def keep_the_table(backwards: bool = False) -> None:
        # Neither way touches the table: forwards it now belongs to the notices app; backwards
        # it is still there (undoing the notices app's migration leaves it too).
        return None

    manager._run_drop_tables = keep_the_table
    return manager
