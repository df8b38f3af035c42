"""Rows of other apps that refer to records and copies, found through the foreign keys of every
app's tables (Piccolo's app registry). The catalogue does not import the apps above it
(circulation, activities, sync, self-service), yet undoing an import or merging two records
must know whether a record or a copy is in use there — including by a table added later."""

from __future__ import annotations

from functools import cache
from typing import Any

from piccolo.conf.apps import Finder


@cache
def references_to(tablename: str, ignoring: frozenset[str] = frozenset()) -> tuple[tuple[Any, Any], ...]:
    """(table, column) for every foreign key, in every app, that points at `tablename`, but those
    of the tables `ignoring`."""
    found = []
    for table in Finder().get_table_classes():
        if table._meta.tablename in ignoring:
            continue
        for column in table._meta.foreign_key_columns:
            if column._foreign_key_meta.resolved_references._meta.tablename == tablename:
                found.append((table, column))
    return tuple(found)


async def referred(tablename: str, ids: list[int], ignoring: frozenset[str] = frozenset()) -> set[int]:
    """The ids among `ids` that some row of another table refers to."""
    if not ids:
        return set()
    found: set[int] = set()
    for table, column in references_to(tablename, ignoring):
        rows = await table.select(column).where(column.is_in(list(ids))).distinct()
        found.update(row[column._meta.name] for row in rows)
    return found
