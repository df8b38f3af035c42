"""Partial indexes of registrations (written by hand: Piccolo has no partial index)."""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-11-28T17:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one active registration per person and session; the waitlist in arrival order"

INDEXES = {
    # A second registration of the same child for the same session fails here, however fast.
    "registration_active_unique": (
        "CREATE UNIQUE INDEX registration_active_unique ON registration (occurrence, patron) "
        "WHERE status IN ('confirmed', 'offered', 'waitlisted', 'attended', 'no_show')"
    ),
    "registration_queue_idx": (
        "CREATE INDEX registration_queue_idx ON registration (occurrence, arrival) WHERE status = 'waitlisted'"
    ),
    "registration_patron_idx": "CREATE INDEX registration_patron_idx ON registration (patron)",
}


async def forwards():
    manager = PortableMigrationManager(migration_id=ID, app_name="activities", description=DESCRIPTION)

    async def forward():
        for statement in INDEXES.values():
            await engine_finder().run_ddl(statement)

    async def backward():
        for name in INDEXES:
            await engine_finder().run_ddl(f"DROP INDEX {name}")

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
