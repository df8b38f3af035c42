"""An index on loan (branch, checked_out_at), written by hand (Piccolo indexes one column).

The central node gives a branch the PIN verifiers of the readers who borrowed there lately
(library/sync/feed.py, `VERIFIER_HOLDERS`): that look-up goes by the lending branch and the
checkout time, on every page of readers the feed sends.
"""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-12-07T04:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index on loan (branch, checked_out_at)"


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="loans", description=DESCRIPTION)

    async def forward():
        await engine_finder().run_ddl("CREATE INDEX loan_branch_checked_out_idx ON loan (branch, checked_out_at)")

    async def backward():
        await engine_finder().run_ddl("DROP INDEX loan_branch_checked_out_idx")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
