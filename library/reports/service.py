"""Statistics: recount branch-days from the stored rows, and read the counts for a page.

How the counts stay true (docs/statistics.md): a branch-day's counts are always recounted
whole from the rows that are stored, by the rows' own timestamps (a loan counts on the local
day it was lent, wherever and whenever its row arrived). `refresh` finds the branch-days that
may have changed since it last ran and recounts them:

- rows that are new since then, by id (a branch's offline day, synced in late, gets new ids
  here however old its timestamps are);
- rows the sync log (`sync_change`, written by database triggers for every replicated write,
  an applied upload's too) names since then: a loan returned during the offline day;
- the last RECENT_DAYS local days of every branch: what staff change here (a return, a
  check-in, a copy withdrawn) happens now, so it counts on one of those days.

`recount` takes a write transaction and a claim (a conditional UPDATE of the `refreshed` mark),
so two refreshes never write the same branch-days at once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from library.accounts.principal import Principal
from library.accounts.tables import Patron
from library.activities.tables import Occurrence, Programme, ProgrammeParticipant, ReadingLog, Registration
from library.branches.tables import Branch
from library.catalog.tables import Item, ItemStatus
from library.db import read_transaction, run_in_write_transaction
from library.errors import InvalidInput
from library.loans.tables import Hold, HoldStatus, Loan
from library.reports import rules
from library.reports.tables import ActiveReaders, CountMark, DailyCount, MonthlyCount
from library.sync.tables import SyncChange
from library.volunteers import service as volunteers

# Local days of every branch recounted at each refresh (today and the two before).
RECENT_DAYS = 3
# A page recounts what changed at most this often; between refreshes it reads the counts.
REFRESH_SECONDS = 300
# Rows read from a source at a time when looking for changed branch-days.
CHUNK = 5000
SOURCES = ("loan", "patron", "item", "hold", "occurrence", "registration")
SYNCED_KINDS = ("loan", "patron", "item", "hold")
SEATED = ("confirmed", "attended", "no_show")


async def _branches() -> dict[int, dict[str, Any]]:
    rows = await Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en, Branch.time_zone,
                               Branch.kind).order_by(Branch.kind).order_by(Branch.code)
    return {row["id"]: row for row in rows}


# --- which branch-days a row touches ---------------------------------------------------------------


def _days_of(branches: dict[int, dict[str, Any]], pairs: Iterable[tuple[Any, Any]]) -> set[tuple[int, dt.date]]:
    found = set()
    for branch_id, moment in pairs:
        if branch_id in branches and moment is not None:
            found.add((branch_id, rules.local_day(moment, branches[branch_id]["time_zone"])))
    return found


async def _loan_days(branches, where) -> set[tuple[int, dt.date]]:
    rows = await Loan.select(Loan.branch, Loan.checked_out_at, Loan.returned_branch, Loan.returned_at,
                             Loan.last_renewed_at).where(where)
    return _days_of(branches, [pair for row in rows for pair in (
        (row["branch"], row["checked_out_at"]), (row["returned_branch"], row["returned_at"]),
        (row["branch"], row["last_renewed_at"]))])


async def _patron_days(branches, where):
    rows = await Patron.select(Patron.home_branch, Patron.created_at).where(where)
    return _days_of(branches, [(row["home_branch"], row["created_at"]) for row in rows])


async def _item_days(branches, where):
    rows = await Item.select(Item.home_branch, Item.created_at, Item.updated_at, Item.status).where(where)
    return _days_of(branches, [pair for row in rows for pair in (
        (row["home_branch"], row["created_at"]),
        (row["home_branch"], row["updated_at"] if row["status"] == ItemStatus.withdrawn else None))])


async def _hold_days(branches, where):
    rows = await Hold.select(Hold.pickup_branch, Hold.closed_at).where(where)
    return _days_of(branches, [(row["pickup_branch"], row["closed_at"]) for row in rows])


async def _occurrence_days(branches, where):
    rows = await Occurrence.select(Occurrence.event.branch.as_alias("branch"), Occurrence.starts_at).where(where)
    return _days_of(branches, [(row["branch"], row["starts_at"]) for row in rows])


async def _registration_days(branches, where):
    rows = await Registration.select(Registration.occurrence.event.branch.as_alias("branch"),
                                     Registration.occurrence.starts_at.as_alias("starts_at")).where(where)
    return _days_of(branches, [(row["branch"], row["starts_at"]) for row in rows])


TABLES = {"loan": (Loan, _loan_days), "patron": (Patron, _patron_days), "item": (Item, _item_days),
          "hold": (Hold, _hold_days), "occurrence": (Occurrence, _occurrence_days),
          "registration": (Registration, _registration_days)}


async def _changed_days(branches, marks: dict[str, int]) -> tuple[set[tuple[int, dt.date]], dict[str, int]]:
    """Branch-days touched by rows new since the marks, or named by the sync log since its mark."""
    days: set[tuple[int, dt.date]] = set()
    new_marks = dict(marks)
    for name in SOURCES:
        table, days_of = TABLES[name]
        top = await table.select(table.id).order_by(table.id, ascending=False).limit(1).first()
        if top is None:
            continue
        seen = marks.get(name, 0)
        while seen < top["id"]:
            upto = min(seen + CHUNK * 20, top["id"])
            days |= await days_of(branches, (table.id > seen) & (table.id <= upto))
            seen = upto
        new_marks[name] = top["id"]
    top = await SyncChange.select(SyncChange.seq).order_by(SyncChange.seq, ascending=False).limit(1).first()
    if top is not None:
        changes = await SyncChange.select(SyncChange.kind, SyncChange.entity_uuid).where(
            (SyncChange.seq > marks.get("sync_change", 0)) & (SyncChange.seq <= top["seq"])
            & SyncChange.kind.is_in(list(SYNCED_KINDS)))
        by_kind: dict[str, list[str]] = defaultdict(list)
        for change in changes:
            by_kind[change["kind"]].append(change["entity_uuid"])
        for kind, uuids in by_kind.items():
            table, days_of = TABLES[kind]
            for start in range(0, len(uuids), 500):
                days |= await days_of(branches, table.uuid.is_in(uuids[start:start + 500]))
        new_marks["sync_change"] = top["seq"]
    return days, new_marks


def _recent_days(branches, now: dt.datetime) -> set[tuple[int, dt.date]]:
    days = set()
    for branch_id, branch in branches.items():
        today = rules.local_day(now, branch["time_zone"])
        days |= {(branch_id, today - dt.timedelta(days=n)) for n in range(RECENT_DAYS)}
    return days


# --- counting a set of branch-days from the stored rows -----------------------------------------------


async def count_days(branches, wanted: set[tuple[int, dt.date]]) -> dict[tuple[int, dt.date], Counter]:
    """The counts of each wanted branch-day, from the stored rows (read in one pass per month)."""
    counts: dict[tuple[int, dt.date], Counter] = {pair: Counter() for pair in wanted}
    by_month: dict[str, set[tuple[int, dt.date]]] = defaultdict(set)
    for pair in wanted:
        by_month[rules.month_key(pair[1])].add(pair)
    for pairs in by_month.values():
        ids = sorted({branch_id for branch_id, _ in pairs})
        first, last = min(day for _, day in pairs), max(day for _, day in pairs)
        # Wide enough for any time zone; each row is then put on its branch's local day.
        start = dt.datetime.combine(first, dt.time(), dt.timezone.utc) - dt.timedelta(hours=14)
        end = dt.datetime.combine(last, dt.time(), dt.timezone.utc) + dt.timedelta(hours=38)

        def put(branch_id, moment, measure: str, breakdown: str = "") -> None:
            if branch_id in branches and moment is not None:
                pair = (branch_id, rules.local_day(moment, branches[branch_id]["time_zone"]))
                if pair in pairs:
                    counts[pair][(measure, breakdown)] += 1

        for row in await Loan.select(Loan.branch, Loan.patron_category, Loan.checked_out_at).where(
                Loan.branch.is_in(ids) & (Loan.checked_out_at >= start) & (Loan.checked_out_at < end)):
            put(row["branch"], row["checked_out_at"], "loans", row["patron_category"])
        for row in await Loan.select(Loan.returned_branch, Loan.patron_category, Loan.returned_at).where(
                Loan.returned_branch.is_in(ids) & (Loan.returned_at >= start) & (Loan.returned_at < end)):
            put(row["returned_branch"], row["returned_at"], "returns", row["patron_category"])
        for row in await Loan.select(Loan.branch, Loan.patron_category, Loan.last_renewed_at).where(
                Loan.branch.is_in(ids) & (Loan.last_renewed_at >= start) & (Loan.last_renewed_at < end)):
            put(row["branch"], row["last_renewed_at"], "renewed", row["patron_category"])
        for row in await Hold.select(Hold.pickup_branch, Hold.closed_at).where(
                Hold.pickup_branch.is_in(ids) & (Hold.status == HoldStatus.fulfilled)
                & (Hold.closed_at >= start) & (Hold.closed_at < end)):
            put(row["pickup_branch"], row["closed_at"], "holds_filled")
        for row in await Patron.select(Patron.home_branch, Patron.category, Patron.birth_date, Patron.created_at).where(
                Patron.home_branch.is_in(ids) & (Patron.created_at >= start) & (Patron.created_at < end)):
            band = rules.age_band(row["birth_date"], row["created_at"].date())
            put(row["home_branch"], row["created_at"], "new_readers", f"{row['category']}|{band}")
        for row in await Item.select(Item.home_branch, Item.created_at).where(
                Item.home_branch.is_in(ids) & (Item.created_at >= start) & (Item.created_at < end)):
            put(row["home_branch"], row["created_at"], "copies_added")
        # A copy keeps no date of its withdrawal: the day of its last change stands for it.
        for row in await Item.select(Item.home_branch, Item.updated_at).where(
                Item.home_branch.is_in(ids) & (Item.status == ItemStatus.withdrawn)
                & (Item.updated_at >= start) & (Item.updated_at < end)):
            put(row["home_branch"], row["updated_at"], "copies_withdrawn")
        for row in await Occurrence.select(Occurrence.event.branch.as_alias("branch"),
                                           Occurrence.event.kind.as_alias("kind"), Occurrence.starts_at).where(
                Occurrence.event.branch.is_in(ids) & (Occurrence.status != "cancelled")
                & (Occurrence.starts_at >= start) & (Occurrence.starts_at < end)):
            put(row["branch"], row["starts_at"], "sessions", row["kind"])
        for row in await Registration.select(
                Registration.occurrence.event.branch.as_alias("branch"),
                Registration.occurrence.event.kind.as_alias("kind"),
                Registration.occurrence.starts_at.as_alias("starts_at"),
                Registration.status, Registration.patron.birth_date.as_alias("birth_date")).where(
                Registration.occurrence.event.branch.is_in(ids) & Registration.status.is_in(list(SEATED))
                & (Registration.occurrence.status != "cancelled")
                & (Registration.occurrence.starts_at >= start) & (Registration.occurrence.starts_at < end)):
            breakdown = f"{row['kind']}|{rules.age_band(row['birth_date'], row['starts_at'].date())}"
            put(row["branch"], row["starts_at"], "registrations", breakdown)
            if row["status"] in ("attended", "no_show"):
                put(row["branch"], row["starts_at"], row["status"], breakdown)
    return counts


async def _active_readers(branches, period_key: str) -> list[dict[str, Any]]:
    """Distinct readers who borrowed in a month or a year, per branch and for the network.
    Anonymised loans (their reader gone) cannot be told apart and are left out."""
    if len(period_key) == 4:
        first, last = dt.date(int(period_key), 1, 1), dt.date(int(period_key), 12, 31)
    else:
        period = rules.parse_period("month", period_key)
        first, last = period.first, period.last
    per_branch: dict[int, dict[int, str]] = defaultdict(dict)
    network: dict[int, str] = {}
    zones: dict[str, list[int]] = defaultdict(list)
    for branch_id, branch in branches.items():
        zones[branch["time_zone"]].append(branch_id)
    for zone, ids in zones.items():
        start, end = rules.days_window(first, last, zone)
        rows = await Loan.select(Loan.branch, Loan.patron, Loan.patron_category,
                                 Loan.patron.birth_date.as_alias("birth_date")).where(
            Loan.branch.is_in(ids) & Loan.patron.is_not_null() & (Loan.checked_out_at >= start)
            & (Loan.checked_out_at < end)).distinct()
        for row in rows:
            breakdown = f"{row['patron_category']}|{rules.age_band(row['birth_date'], last)}"
            per_branch[row["branch"]][row["patron"]] = breakdown
            network[row["patron"]] = breakdown
    out = []
    for branch_id, readers in [*per_branch.items(), (None, network)]:
        for breakdown, value in Counter(readers.values()).items():
            out.append({"branch": branch_id, "period": period_key, "breakdown": breakdown, "value": value})
    return out


async def _write_counts(branches, wanted: set[tuple[int, dt.date]]) -> None:
    counts = await count_days(branches, wanted)
    by_branch: dict[int, list[dt.date]] = defaultdict(list)
    for branch_id, day in wanted:
        by_branch[branch_id].append(day)
    for branch_id, days in by_branch.items():
        for start in range(0, len(days), 500):
            await DailyCount.delete().where((DailyCount.branch == branch_id) & DailyCount.day.is_in(days[start:start + 500]))
    rows = [DailyCount(branch=branch_id, day=day, month=rules.month_key(day), measure=measure, breakdown=breakdown,
                       value=value)
            for (branch_id, day), counter in counts.items() for (measure, breakdown), value in counter.items()]
    for start in range(0, len(rows), 500):
        await DailyCount.insert(*rows[start:start + 500])
    for branch_id, month in sorted({(branch_id, rules.month_key(day)) for branch_id, day in wanted}):
        await MonthlyCount.delete().where((MonthlyCount.branch == branch_id) & (MonthlyCount.month == month))
        sums = await DailyCount.select(DailyCount.measure, DailyCount.breakdown, DailyCount.value).where(
            (DailyCount.branch == branch_id) & (DailyCount.month == month))
        summed: Counter = Counter()
        for row in sums:
            summed[(row["measure"], row["breakdown"])] += row["value"]
        if summed:
            await MonthlyCount.insert(*[MonthlyCount(branch=branch_id, month=month, measure=measure,
                                                     breakdown=breakdown, value=value)
                                        for (measure, breakdown), value in summed.items()])
    periods = {rules.month_key(day) for _, day in wanted} | {f"{day.year:04d}" for _, day in wanted}
    for period_key in sorted(periods):
        await ActiveReaders.delete().where(ActiveReaders.period == period_key)
        rows = [ActiveReaders(**row) for row in await _active_readers(branches, period_key)]
        if rows:
            await ActiveReaders.insert(*rows)


async def _marks() -> dict[str, int]:
    return {row["name"]: row["value"] for row in await CountMark.select(CountMark.name, CountMark.value)}


async def _set_marks(marks: dict[str, int]) -> None:
    have = await _marks()
    for name, value in marks.items():
        if name in have:
            await CountMark.update({CountMark.value: value}).where(CountMark.name == name)
        else:
            await CountMark.insert(CountMark(name=name, value=value))


async def _refresh_due(now: dt.datetime) -> bool:
    last = await CountMark.select(CountMark.value).where(CountMark.name == "refreshed").first()
    return last is None or last["value"] < int(now.timestamp()) - REFRESH_SECONDS


async def refresh(now: dt.datetime, force: bool = False) -> bool:
    """Recount the branch-days that may have changed since the last refresh (see the module's
    docstring). At most once per REFRESH_SECONDS unless `force`; False if another refresh won."""
    stamp = int(now.timestamp())
    if not force and not await _refresh_due(now):
        return False  # a read first: most page views find the counts fresh, no write transaction

    async def work() -> bool:
        if not await CountMark.exists().where(CountMark.name == "refreshed"):
            await CountMark.insert(CountMark(name="refreshed", value=0))
        limit = stamp + 1 if force else stamp - REFRESH_SECONDS
        # The claim: only one refresh passes this conditional UPDATE (on PostgreSQL the row lock
        # makes a second one wait, then find the value changed).
        won = await CountMark.update({CountMark.value: stamp}).where(
            (CountMark.name == "refreshed") & (CountMark.value < limit)).returning(CountMark.id)
        if not won:
            return False
        branches = await _branches()
        marks = await _marks()
        days, new_marks = await _changed_days(branches, marks)
        await _write_counts(branches, days | _recent_days(branches, now))
        new_marks.pop("refreshed", None)
        await _set_marks(new_marks)
        return True

    return await run_in_write_transaction(work)


async def recount(first: dt.date, last: dt.date) -> int:
    """Recount every branch-day from `first` to `last` (an administrator's "recount the year")."""
    async def work() -> int:
        branches = await _branches()
        days = {(branch_id, first + dt.timedelta(days=n)) for branch_id in branches
                for n in range((last - first).days + 1)}
        await _write_counts(branches, days)
        return len(days)

    return await run_in_write_transaction(work)


# --- reading the counts for a page ---------------------------------------------------------------


def visible_branches(principal: Principal, branches: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {branch_id: row for branch_id, row in branches.items() if principal.works_for(branch_id)}


def _scope(principal: Principal, branches, code: str | None) -> tuple[list[int], dict[str, Any] | None]:
    """The branches a page counts: one the staff member works for, or all of hers (an
    administrator of the network: the network)."""
    mine = visible_branches(principal, branches)
    if code:
        chosen = [branch_id for branch_id, row in mine.items() if row["code"] == code]
        if not chosen:
            raise InvalidInput("unknown_report_branch")
        return chosen, mine[chosen[0]]
    return sorted(mine), None


async def statistics(principal: Principal, period: rules.Period, branch_code: str | None,
                     now: dt.datetime, refreshed_now: bool = False) -> dict[str, Any]:
    """Everything the statistics page shows for a period and a branch (or the staff member's
    whole network), with the small-count rule applied to every breakdown."""
    async with read_transaction():
        due = not refreshed_now and await _refresh_due(now)
        if not due:
            branches = await _branches()
            ids, branch = _scope(principal, branches, branch_code)
            grouped = await DailyCount.select(
                DailyCount.month, DailyCount.measure, DailyCount.breakdown, DailyCount.value.as_alias("value")
            ).where(DailyCount.branch.is_in(ids or [-1]) & (DailyCount.day >= period.first)
                    & (DailyCount.day <= period.last)) if period.kind == "day" else await _summed(ids, period)
            network = branch is None and len(ids) == len(branches)
            active = await _active(ids, period, network)
            challenges = await _challenges(ids, period, network)
            refreshed = await CountMark.select(CountMark.value).where(CountMark.name == "refreshed").first()
            # Read from the check-ins and check-outs themselves (library.volunteers), not counted here.
            volunteer_hours = await volunteers.hours_total(ids, period.first, period.last)
    if due:
        # The counts are older than REFRESH_SECONDS: recount what changed (one writer wins),
        # then read them as above.
        await refresh(now)
        return await statistics(principal, period, branch_code, now, refreshed_now=True)
    series: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    breakdowns: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in grouped:
        bucket = row["bucket"] if "bucket" in row else period.first.isoformat()
        series[row["measure"]][bucket] += row["value"]
        totals[row["measure"]] += row["value"]
        breakdowns[row["measure"]][row["breakdown"]] += row["value"]
    return {
        "period": period, "branch": branch, "network": network,
        "branches": [branches[branch_id] for branch_id in sorted(visible_branches(principal, branches))],
        "buckets": period.buckets(), "series": {m: dict(v) for m, v in series.items()},
        "totals": dict(totals), "breakdowns": {m: dict(v) for m, v in breakdowns.items()},
        "active": active, "challenges": challenges, "volunteer_hours": volunteer_hours,
        "refreshed_at": dt.datetime.fromtimestamp(refreshed["value"], dt.timezone.utc) if refreshed else None,
    }


async def _summed(ids: list[int], period: rules.Period) -> list[dict[str, Any]]:
    """A year's counts summed by month, a month's by day, in the database (a GROUP BY on the
    stored month or day: the same on both engines)."""
    ids = ids or [-1]
    marks = ", ".join("{}" for _ in ids)
    # Piccolo's builder cannot alias a SUM grouped by several columns; the statements are plain
    # SQL that both engines read the same. A year reads the monthly sums, a month the days.
    if period.kind == "year":
        months = period.buckets()
        rows = await MonthlyCount.raw(
            f"SELECT month AS bucket, measure, breakdown, SUM(value) AS value FROM monthly_count "
            f"WHERE branch IN ({marks}) AND month >= {{}} AND month <= {{}} GROUP BY month, measure, breakdown",
            *ids, months[0], months[-1])
    else:
        rows = await DailyCount.raw(
            f"SELECT day AS bucket, measure, breakdown, SUM(value) AS value FROM daily_count "
            f"WHERE branch IN ({marks}) AND day >= {{}} AND day <= {{}} GROUP BY day, measure, breakdown",
            *ids, period.first, period.last)
    for row in rows:
        row["bucket"] = str(row["bucket"])
        row["value"] = int(row["value"])
    return rows


async def _active(ids: list[int], period: rules.Period, network: bool) -> dict[str, Any] | None:
    """Active readers of a month or a year: the network's distinct count, or the sum of the
    chosen branches' (a reader of two branches is then counted at each)."""
    if period.kind == "day":
        return None
    query = ActiveReaders.select(ActiveReaders.breakdown, ActiveReaders.value).where(ActiveReaders.period == period.key)
    query = query.where(ActiveReaders.branch.is_null()) if network else query.where(ActiveReaders.branch.is_in(ids or [-1]))
    cells: dict[str, int] = defaultdict(int)
    for row in await query:
        cells[row["breakdown"]] += row["value"]
    return {"total": sum(cells.values()), "cells": dict(cells)}


async def _challenges(ids: list[int], period: rules.Period, network: bool) -> list[dict[str, Any]]:
    """Reading challenges that ran in the period: how many children took part and finished."""
    where = (Programme.starts_on <= period.last) & (Programme.ends_on >= period.first)
    where &= (Programme.branch.is_in(ids or [-1]) | Programme.branch.is_null()) if network else Programme.branch.is_in(ids or [-1])
    out = []
    for programme in await Programme.select().where(where).order_by(Programme.starts_on).output(load_json=True):
        participants = await ProgrammeParticipant.select(
            ProgrammeParticipant.patron, ProgrammeParticipant.patron.birth_date.as_alias("birth_date")).where(
            ProgrammeParticipant.programme == programme["id"])
        logs = await ReadingLog.select(ReadingLog.patron, ReadingLog.minutes).where(
            ReadingLog.programme == programme["id"])
        done: dict[int, int] = defaultdict(int)
        for log in logs:
            done[log["patron"]] += (log["minutes"] or 0) if programme["goal_kind"] == "minutes" else 1
        finished = sum(1 for person in participants if done[person["patron"]] >= rules.goal_for(
            programme["goals"], rules.age_on(person["birth_date"], programme["starts_on"])))
        out.append({"title_zh": programme["title_zh"], "title_en": programme["title_en"] or programme["title_zh"],
                    "starts_on": programme["starts_on"], "ends_on": programme["ends_on"],
                    # Counts of children: the small-count rule applies (docs/statistics.md).
                    "participants": rules.count_of_people(len(participants)),
                    "finished": rules.count_of_people(finished) if len(participants) >= rules.SMALL_COUNT
                    else rules.HIDDEN if participants else 0})
    return out


async def annual_return(principal: Principal, year: int, branch_code: str | None, now: dt.datetime) -> dict[str, Any]:
    """The figures a public library reports for a year (持证读者数、新增读者、外借册次、举办活动场次
    与参与人次、志愿服务时长)."""
    period = rules.Period("year", dt.date(year, 1, 1), dt.date(year, 12, 31))
    figures = await statistics(principal, period, branch_code, now)
    ids = [row["id"] for row in figures["branches"]] if figures["branch"] is None else [figures["branch"]["id"]]
    async with read_transaction():
        # Cards valid on the last day of the year, of readers registered by then.
        end = rules.days_window(period.last, period.last, "Asia/Shanghai")[1]
        holders = await Patron.count().where(Patron.home_branch.is_in(ids or [-1]) & (Patron.created_at < end)
                                             & (Patron.expires_on >= period.last))
    totals = figures["totals"]
    return {**figures, "year": year, "annual": {
        "card_holders": holders, "new_readers": totals.get("new_readers", 0), "loans": totals.get("loans", 0),
        "sessions": totals.get("sessions", 0), "attendance": totals.get("attended", 0),
        "volunteer_hours": figures["volunteer_hours"]}}
