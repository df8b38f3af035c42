"""Partial unique indexes that keep circulation's invariants (written by hand: Piccolo has no partial index).

Both engines have partial indexes with the same syntax, so one statement serves both.
"""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-11-28T16:12:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one open loan per copy, one active hold per copy and per reader and record, one open transit per copy"

INDEXES = {
    # Two desks scanning the same copy at the same second: the second insert fails here.
    "loan_open_item_unique": "CREATE UNIQUE INDEX loan_open_item_unique ON loan (item) WHERE returned_at IS NULL",
    # A reader's open loans are counted on every checkout: the index holds only open ones.
    "loan_open_patron_idx": "CREATE INDEX loan_open_patron_idx ON loan (patron) WHERE returned_at IS NULL",
    "loan_returned_idx": "CREATE INDEX loan_returned_idx ON loan (returned_at) WHERE patron IS NOT NULL",
    "hold_item_active_unique": (
        "CREATE UNIQUE INDEX hold_item_active_unique ON hold (item) WHERE status IN ('in_transit', 'ready')"
    ),
    "hold_patron_record_active_unique": (
        "CREATE UNIQUE INDEX hold_patron_record_active_unique ON hold (patron, record) "
        "WHERE status IN ('waiting', 'in_transit', 'ready')"
    ),
    "hold_queue_idx": "CREATE INDEX hold_queue_idx ON hold (record, placed_at) WHERE status = 'waiting'",
    "transit_open_item_unique": (
        "CREATE UNIQUE INDEX transit_open_item_unique ON transit (item) WHERE received_at IS NULL"
    ),
}


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="loans", description=DESCRIPTION)

    async def forward():
        for statement in INDEXES.values():
            await engine_finder().run_ddl(statement)

    async def backward():
        for name in INDEXES:
            await engine_finder().run_ddl(f"DROP INDEX {name}")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
