"""Indexes on loan for the statistics' counts, written by hand (Piccolo indexes one column).

The counts (library/reports/service.py, `count_days`) read the returns of a few days by returning
branch and return time, and the renewals by branch and renewal time. Without an index each of
those reads went through every loan ever made, inside the refresh's write transaction, every
five minutes: at 2,000,000 loans the desk waited on it, and a first count of three years of
history read the whole table twice for every month. Partial: a checkout writes neither (a new
loan is neither returned nor renewed).
"""

from piccolo.engine.finder import engine_finder

from library.migration_support import PortableMigrationManager

ID = "2026-12-08T02:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes on loan (returned_branch, returned_at) and (branch, last_renewed_at)"

INDEXES = {
    "loan_returns_idx": "CREATE INDEX loan_returns_idx ON loan (returned_branch, returned_at) "
                        "WHERE returned_at IS NOT NULL",
    "loan_renewals_idx": "CREATE INDEX loan_renewals_idx ON loan (branch, last_renewed_at) "
                         "WHERE last_renewed_at IS NOT NULL",
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
