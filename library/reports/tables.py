"""Statistics: daily counts per branch, recounted from the stored rows, and the marks that say
which stored rows the counts have already seen (library.reports.service.refresh).

The counts are a cache of what the loans, readers, copies and activities tables say, never a
second truth: any branch-day can be recounted from those rows at any time, and is whenever a
row for it arrives, however late (docs/statistics.md, "Keeping the counts true").
"""

from __future__ import annotations

from piccolo.columns import BigInt, Date, ForeignKey, Integer, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Unique
from piccolo.table import Table

from library.branches.tables import Branch


class DailyCount(Table):
    """One figure of one branch on one local day: `measure` ("loans", "attended", ...) split by
    `breakdown` (a reader category, "activity kind|age band", or "" for none).

    `month` ("2026-03") repeats the day's month so that a year's figures are summed by month
    with a plain GROUP BY, the same on both engines.
    """

    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    day = Date(required=True, index=True)
    month = Varchar(length=7, required=True, index=True)
    measure = Varchar(length=32, required=True)
    breakdown = Varchar(length=64, default="")
    value = Integer(default=0)

    daily_count_unique = Unique([branch, day, measure, breakdown])


class MonthlyCount(Table):
    """The days of a branch's month summed (DailyCount by `month`), rewritten with them: a
    year's page reads twelve rows per figure and branch, not 365."""

    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    month = Varchar(length=7, required=True, index=True)
    measure = Varchar(length=32, required=True)
    breakdown = Varchar(length=64, default="")
    value = Integer(default=0)

    monthly_count_unique = Unique([branch, month, measure, breakdown])


class ActiveReaders(Table):
    """Readers who borrowed at least once in a month or a year: a distinct count, which no sum
    of days gives. `branch` null: the whole network (a reader who borrows at two branches is
    one reader of the network). `period` is "2026-03" or "2026"; `breakdown` "category|age band"."""

    branch = ForeignKey(references=Branch, null=True, default=None, on_delete=OnDelete.cascade)
    period = Varchar(length=7, required=True, index=True)
    breakdown = Varchar(length=64, default="")
    value = Integer(default=0)


class CountMark(Table):
    """How far the counts have read a source (the highest row id seen, the sync log's seq), and
    when the last refresh was claimed (`refreshed`, seconds since the epoch)."""

    name = Varchar(length=32, unique=True, required=True)
    value = BigInt(default=0)
