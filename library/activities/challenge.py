"""The summer reading challenge: children log what they read, earn badges, finish; the branch sees who.

Books borrowed during the programme count too when the guardian opts in: they are logged
from the child's loans when the progress is looked at (idempotent on the loan), so the
checkout desk does no extra work. The leaderboard shows no full names: a family name and
a star for each other character, with the card's last two digits to tell twins apart.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from library import spreadsheet
from library.accounts.principal import Principal
from library.accounts.rules import age_on
from library.accounts.service import normalise_card_number
from library.accounts.tables import Patron
from library.activities.tables import Programme, ProgrammeParticipant, ReadingLog
from library.db import is_unique_violation, json_list, read_transaction, run_in_write_transaction, write_transaction
from library.errors import InvalidInput, NotFound, NotPermitted

TITLE_LIMIT = 300
# A household logs for its own few children; more cards in one form is not a family.
CARDS_PER_LOG = 10


@dataclass(frozen=True)
class Badge:
    """A badge's design: its picture is /static/badge-<key>.svg (its <title> names it in both languages)."""

    key: str
    name_zh: str
    name_en: str

    @property
    def picture(self) -> str:
        return f"/static/badge-{self.key}.svg"


# The ladder, from the first book to twice the goal. A programme that names its own thresholds
# gets the badges in this order; one that names none gets them at points of each child's goal.
LADDER = (
    Badge("seedling", "小种子", "Seedling"),
    Badge("bookworm", "小书虫", "Bookworm"),
    Badge("explorer", "故事探险家", "Story explorer"),
    Badge("star", "阅读之星", "Reading star"),
    Badge("champion", "阅读小达人", "Reading champion"),
)


def badge_thresholds(thresholds: list[int], goal: int) -> list[tuple[int, Badge]]:
    """(threshold, badge) from the lowest up. Without thresholds of the programme's own: the first
    book, a third and two thirds of the goal, the goal (阅读之星), twice the goal; a point that
    a small goal makes equal to the one before is left out rather than given twice."""
    if thresholds:
        ordered = sorted(set(thresholds))
        return [(at, LADDER[min(index, len(LADDER) - 1)]) for index, at in enumerate(ordered)]
    points = (1, math.ceil(goal / 3), math.ceil(2 * goal / 3), goal, 2 * goal)
    ladder: list[tuple[int, Badge]] = []
    for at, badge in zip(points, LADDER):
        if not ladder or at > ladder[-1][0]:
            ladder.append((at, badge))
    return ladder


def badge_view(at: int, badge: Badge, total: int) -> dict[str, Any]:
    return {"at": at, "key": badge.key, "name_zh": badge.name_zh, "name_en": badge.name_en,
            "picture": badge.picture, "earned": total >= at}


@dataclass
class ProgrammeInput:
    title_zh: str
    starts_on: dt.date
    ends_on: dt.date
    title_en: str = ""
    branch_code: str | None = None
    goal_kind: str = "books"
    goals: list[dict[str, int]] = field(default_factory=lambda: [{"min": 0, "max": 18, "goal": 10}])
    # Thresholds in the goal's unit, named by the ladder in order; none: points of each child's goal.
    badges: list[int] = field(default_factory=list)
    per_child_session_limit: int | None = None


async def create_programme(principal: Principal, data: ProgrammeInput) -> str:
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    if not data.title_zh.strip() and not data.title_en.strip():
        raise InvalidInput("required", field="title_zh")
    if data.ends_on < data.starts_on:
        raise InvalidInput("ends_before_start", field="ends_on")
    if data.goal_kind not in ("books", "minutes"):
        raise InvalidInput("invalid_choice", field="goal_kind")
    for goal in data.goals:
        if not (0 <= goal.get("min", -1) <= goal.get("max", -1) <= 120 and 1 <= goal.get("goal", 0) <= 100000):
            raise InvalidInput("invalid_input", field="goals")
    if len(set(data.badges)) > len(LADDER) or not all(
            isinstance(at, int) and 1 <= at <= 100000 for at in data.badges):
        raise InvalidInput("invalid_input", field="badges")

    async def work() -> str:
        branch_id = None
        if data.branch_code:
            branch = await Programme.raw("SELECT id FROM branch WHERE code = {}", data.branch_code.upper())
            if not branch:
                raise NotFound("branch_not_found", code=data.branch_code)
            branch_id = branch[0]["id"]
            if not principal.works_for(branch_id):
                raise NotPermitted("not_your_branch", code=data.branch_code)
        programme_uuid = str(uuid_module.uuid4())
        await Programme.insert(Programme(
            uuid=programme_uuid, branch=branch_id, title_zh=data.title_zh.strip(), title_en=data.title_en.strip(),
            starts_on=data.starts_on, ends_on=data.ends_on, goal_kind=data.goal_kind, goals=data.goals,
            badges=sorted(set(data.badges)), per_child_session_limit=data.per_child_session_limit))
        return programme_uuid

    return await run_in_write_transaction(work)


async def _programme(programme_uuid: str) -> dict[str, Any]:
    try:
        programme_uuid = str(uuid_module.UUID(str(programme_uuid)))
    except ValueError:
        raise NotFound("programme_not_found") from None
    rows = await Programme.raw("SELECT * FROM programme WHERE uuid = {}", programme_uuid)
    if not rows:
        raise NotFound("programme_not_found")
    row = dict(rows[0])
    row["goals"], row["badges"] = json_list(row["goals"]), json_list(row["badges"])
    return row


async def _child(principal: Principal, card_number: str) -> dict[str, Any]:
    card = normalise_card_number(card_number)
    rows = await Programme.raw("SELECT id, uuid, name, card_number, birth_date FROM patron WHERE card_number = {}", card)
    if not rows or not (principal.is_staff or rows[0]["id"] == principal.id or rows[0]["id"] in principal.children_ids):
        raise NotPermitted("not_guardian")
    return rows[0]


def goal_for(programme: dict[str, Any], age: int | None) -> int:
    for goal in programme["goals"]:
        if age is not None and goal["min"] <= age <= goal["max"]:
            return goal["goal"]
    return max((goal["goal"] for goal in programme["goals"]), default=10)


def age_group(programme: dict[str, Any], age: int | None) -> str:
    for goal in programme["goals"]:
        if age is not None and goal["min"] <= age <= goal["max"]:
            return f"{goal['min']}-{goal['max']}"
    return "?"


def masked(name: str, card_number: str) -> str:
    """李小米 → 李** (…02): enough for a child to find themself, not enough to identify them."""
    name = (name or "").strip()
    return f"{name[:1]}{'*' * max(1, len(name) - 1)} (…{card_number[-2:]})"


async def log_reading(principal: Principal, programme_uuid: str, card_number: str, title: str,
                      read_on: dt.date, minutes: int | None = None, record_uuid: str | None = None) -> str:
    """One book for one child; the new log's uuid."""
    [logged] = await log_reading_for(principal, programme_uuid, [card_number], title, read_on, minutes, record_uuid)
    return logged


async def log_reading_for(principal: Principal, programme_uuid: str, card_numbers: list[str], title: str,
                          read_on: dt.date, minutes: int | None = None, record_uuid: str | None = None) -> list[str]:
    """One book for several children at once (a guardian reads to both): every child or none,
    a card the principal may not act for refuses the whole log. The new logs' uuids, in card order."""
    title = (title or "").strip()
    cards = list(dict.fromkeys(normalise_card_number(card) for card in card_numbers if (card or "").strip()))
    if not cards:
        raise InvalidInput("required", field="card")
    if len(cards) > CARDS_PER_LOG:
        raise InvalidInput("number_out_of_range", field="card", low=1, high=CARDS_PER_LOG)
    programme = await _programme(programme_uuid)
    if not programme["starts_on"] <= read_on <= programme["ends_on"]:
        raise InvalidInput("outside_programme", field="read_on", starts=programme["starts_on"].isoformat(),
                           ends=programme["ends_on"].isoformat())
    if minutes is not None and not 1 <= minutes <= 24 * 60:
        raise InvalidInput("number_out_of_range", field="minutes", low=1, high=24 * 60)
    if programme["goal_kind"] == "minutes" and minutes is None:
        raise InvalidInput("required", field="minutes")

    async def work() -> list[str]:
        children = [await _child(principal, card) for card in cards]
        record_id = None
        nonlocal title
        if record_uuid:
            rows = await Programme.raw("SELECT id, title FROM record WHERE uuid = {}", record_uuid)
            if rows:
                record_id, title = rows[0]["id"], title or rows[0]["title"]
        if not title:
            raise InvalidInput("required", field="title")
        logged = [str(uuid_module.uuid4()) for _ in children]
        await ReadingLog.insert(*[ReadingLog(
            uuid=log_uuid, programme=programme["id"], patron=child["id"], record=record_id,
            title=title[:TITLE_LIMIT], minutes=minutes, read_on=read_on) for log_uuid, child in zip(logged, children)])
        for child in children:
            await _join(programme["id"], child["id"])
        return logged

    return await run_in_write_transaction(work)


async def _join(programme_id: int, patron_id: int, log_loans: bool | None = None) -> None:
    """The child takes part from the first log (or opt-in) on. Two phones of one family logging
    at the same moment both insert: the unique pair lets one row in and the other do nothing,
    instead of the loser's read-then-insert failing on PostgreSQL."""
    await ProgrammeParticipant.insert(ProgrammeParticipant(
        programme=programme_id, patron=patron_id, log_loans=bool(log_loans),
        joined_at=dt.datetime.now(dt.timezone.utc))).on_conflict(
        target=(ProgrammeParticipant.programme, ProgrammeParticipant.patron), action="DO NOTHING")
    if log_loans is not None:
        await ProgrammeParticipant.update({ProgrammeParticipant.log_loans: log_loans}).where(
            (ProgrammeParticipant.programme == programme_id) & (ProgrammeParticipant.patron == patron_id))


async def set_log_loans(principal: Principal, programme_uuid: str, card_number: str, log_loans: bool) -> None:
    """The guardian's opt-in: books the child borrows during the programme count as read."""
    programme = await _programme(programme_uuid)

    async def work() -> None:
        child = await _child(principal, card_number)
        await _join(programme["id"], child["id"], log_loans)

    await run_in_write_transaction(work)


async def _log_loans(programme: dict[str, Any], patron_ids: list[int]) -> None:
    """Copy the loans of opted-in children within the programme into their reading log (once each)."""
    if not patron_ids:
        return
    marks = ", ".join("{}" for _ in patron_ids)
    start = dt.datetime.combine(programme["starts_on"], dt.time(), tzinfo=dt.timezone.utc) - dt.timedelta(hours=8)
    end = dt.datetime.combine(programme["ends_on"], dt.time(23, 59), tzinfo=dt.timezone.utc)
    loans = await Programme.raw(
        "SELECT l.uuid, l.patron, l.checked_out_at, r.id AS record, r.title FROM loan l JOIN item i ON i.id = l.item "
        "JOIN record r ON r.id = i.record JOIN programme_participant p ON p.patron = l.patron AND p.programme = {} "
        f"WHERE p.log_loans = {{}} AND l.patron IN ({marks}) AND l.checked_out_at >= {{}} AND l.checked_out_at <= {{}}",
        programme["id"], True, *patron_ids, start, end)
    for loan in loans:
        try:
            async with write_transaction():
                await ReadingLog.insert(ReadingLog(
                    uuid=str(uuid_module.uuid4()), programme=programme["id"], patron=loan["patron"],
                    record=loan["record"], title=loan["title"][:TITLE_LIMIT], read_on=loan["checked_out_at"].date(),
                    source="loan", source_key=f"loan:{loan['uuid']}"))
        except Exception as error:  # logged before: the unique source key says so
            if not is_unique_violation(error):
                raise


def _badges(programme: dict[str, Any], goal: int, total: int) -> list[int]:
    return [at for at, _ in badge_thresholds(programme["badges"], goal) if total >= at]


def _amount(programme: dict[str, Any], minutes: int | None) -> int:
    return (minutes or 0) if programme["goal_kind"] == "minutes" else 1


async def just_logged(principal: Principal, programme: dict[str, Any], log_uuids: list[str]) -> list[dict[str, Any]]:
    """What the logs just made were, and the badges each one earned: the page after logging says so.

    The uuids come back from the browser: one that is not a log of this programme, or is the
    log of a child the principal may not see (a hostile reader guessing), is left out.
    """
    wanted = []
    for value in log_uuids[:CARDS_PER_LOG]:
        try:
            wanted.append(str(uuid_module.UUID(str(value))))
        except ValueError:
            continue
    if not wanted:
        return []
    async with read_transaction():
        logs = await ReadingLog.select(
            ReadingLog.id, ReadingLog.uuid, ReadingLog.title, ReadingLog.minutes, ReadingLog.read_on,
            ReadingLog.patron, ReadingLog.patron.name.as_alias("name"),
            ReadingLog.patron.card_number.as_alias("card_number"),
            ReadingLog.patron.birth_date.as_alias("birth_date"),
        ).where((ReadingLog.uuid.is_in(wanted)) & (ReadingLog.programme == programme["id"]))
        logs = [log for log in logs if principal.is_staff or log["patron"] == principal.id
                or log["patron"] in principal.children_ids]
        earlier = await ReadingLog.select(ReadingLog.id, ReadingLog.patron, ReadingLog.minutes).where(
            (ReadingLog.programme == programme["id"])
            & ReadingLog.patron.is_in(sorted({log["patron"] for log in logs}) or [-1]))
    shown = []
    for log in sorted(logs, key=lambda row: row["id"]):
        age = age_on(log["birth_date"], programme["starts_on"]) if log["birth_date"] else None
        goal = goal_for(programme, age)
        before = sum(_amount(programme, row["minutes"]) for row in earlier
                     if row["patron"] == log["patron"] and row["id"] < log["id"])
        after = before + _amount(programme, log["minutes"])
        earned = [badge_view(at, badge, after) for at, badge in badge_thresholds(programme["badges"], goal)
                  if before < at <= after]
        shown.append({"title": log["title"], "name": log["name"], "card_number": log["card_number"],
                      "read_on": log["read_on"], "minutes": log["minutes"], "earned": earned,
                      "finished": before < goal <= after})
    return shown


async def progress(principal: Principal, programme_uuid: str, card_number: str, today: dt.date,
                   logged: list[str] | None = None) -> dict[str, Any]:
    programme = await _programme(programme_uuid)
    child = await _child(principal, card_number)
    await _log_loans(programme, [child["id"]])
    async with read_transaction():
        logs = await Programme.raw(
            "SELECT title, minutes, read_on, source FROM reading_log WHERE programme = {} AND patron = {} "
            "ORDER BY read_on DESC, id DESC", programme["id"], child["id"])
        joined = await Programme.raw("SELECT log_loans FROM programme_participant WHERE programme = {} AND patron = {}",
                                     programme["id"], child["id"])
    age = age_on(child["birth_date"], programme["starts_on"]) if child["birth_date"] else None
    total = sum((log["minutes"] or 0) for log in logs) if programme["goal_kind"] == "minutes" else len(logs)
    goal = goal_for(programme, age)
    return {"programme": programme, "child": child, "logs": logs, "total": total, "goal": goal,
            "finished": total >= goal, "badges": _badges(programme, goal, total),
            "ladder": [badge_view(at, badge, total) for at, badge in badge_thresholds(programme["badges"], goal)],
            "just_logged": await just_logged(principal, programme, logged or []),
            "age_group": age_group(programme, age),
            "log_loans": bool(joined and joined[0]["log_loans"]), "today": today,
            "percent": min(100, int(100 * total / goal)) if goal else 100}


async def standings(programme_uuid: str) -> dict[str, Any]:
    """Per age group, everyone taking part, best first, names masked; and the raw rows for staff."""
    programme = await _programme(programme_uuid)
    participants = await Programme.raw("SELECT patron FROM programme_participant WHERE programme = {}",
                                       programme["id"])
    await _log_loans(programme, [row["patron"] for row in participants])
    rows = await Programme.raw(
        "SELECT p.id, p.name, p.card_number, p.birth_date, count(l.id) AS books, "
        "coalesce(sum(l.minutes), 0) AS minutes FROM programme_participant pp JOIN patron p ON p.id = pp.patron "
        "LEFT JOIN reading_log l ON l.patron = p.id AND l.programme = pp.programme WHERE pp.programme = {} "
        "GROUP BY p.id, p.name, p.card_number, p.birth_date", programme["id"])
    groups: dict[str, list[dict[str, Any]]] = {}
    people = []
    for row in rows:
        age = age_on(row["birth_date"], programme["starts_on"]) if row["birth_date"] else None
        total = row["minutes"] if programme["goal_kind"] == "minutes" else row["books"]
        goal = goal_for(programme, age)
        person = {"name": row["name"], "card_number": row["card_number"], "shown": masked(row["name"], row["card_number"]),
                  "group": age_group(programme, age), "total": int(total), "goal": goal, "finished": total >= goal}
        people.append(person)
        groups.setdefault(person["group"], []).append(person)
    for members in groups.values():
        members.sort(key=lambda person: (-person["total"], person["shown"]))
    return {"programme": programme, "groups": dict(sorted(groups.items())), "people": people}


async def standings_csv(principal: Principal, programme_uuid: str) -> str:
    """For staff: every participant with their card, total, goal and whether they finished."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    data = await standings(programme_uuid)
    lines: list[list[object]] = [["card_number", "name", "age_group", "total", "goal", "finished"]]
    for person in sorted(data["people"], key=lambda p: (p["group"], -p["total"])):
        lines.append([person["card_number"], person["name"], person["group"], person["total"], person["goal"],
                      "yes" if person["finished"] else "no"])
    return spreadsheet.csv_text(lines)


async def programmes() -> list[dict[str, Any]]:
    rows = await Programme.raw("SELECT uuid, title_zh, title_en, starts_on, ends_on, goal_kind FROM programme "
                               "ORDER BY starts_on DESC")
    return [{**row, "uuid": str(row["uuid"])} for row in rows]



# How long before its start and after its end a programme is still on the household's page.
HOUSEHOLD_WINDOW = dt.timedelta(days=60)


async def household_challenges(principal: Principal, people: list[dict[str, Any]],
                               today: dt.date) -> list[dict[str, Any]]:
    """The challenges running about now, with each person of the household's total, goal and
    badges: the account's way in to the progress pages. `people` are the household's patrons
    (card_number, name), as accounts.household gives them."""
    async with read_transaction():
        rows = await Programme.select().where(
            (Programme.ends_on >= today - HOUSEHOLD_WINDOW) & (Programme.starts_on <= today + HOUSEHOLD_WINDOW)
        ).order_by(Programme.starts_on, ascending=False)
        cards = [person["card_number"] for person in people]
        patrons = await Patron.select(Patron.id, Patron.card_number, Patron.birth_date).where(
            Patron.card_number.is_in(cards or ["-"]))
        logs = await ReadingLog.select(ReadingLog.programme, ReadingLog.patron, ReadingLog.minutes).where(
            ReadingLog.programme.is_in([row["id"] for row in rows] or [-1])
            & ReadingLog.patron.is_in([patron["id"] for patron in patrons] or [-1]))
    allowed = {patron["card_number"]: patron for patron in patrons
               if principal.is_staff or patron["id"] == principal.id or patron["id"] in principal.children_ids}
    found = []
    for row in rows:
        programme = {**row, "uuid": str(row["uuid"]), "goals": json_list(row["goals"]),
                     "badges": json_list(row["badges"])}
        members = []
        for person in people:
            patron = allowed.get(person["card_number"])
            if patron is None:
                continue
            age = age_on(patron["birth_date"], programme["starts_on"]) if patron["birth_date"] else None
            goal = goal_for(programme, age)
            total = sum(_amount(programme, log["minutes"]) for log in logs
                        if log["programme"] == row["id"] and log["patron"] == patron["id"])
            members.append({"name": person["name"], "card_number": person["card_number"], "total": total,
                            "goal": goal, "finished": total >= goal,
                            "earned": [badge_view(at, badge, total) for at, badge
                                       in badge_thresholds(programme["badges"], goal) if total >= at]})
        found.append({"programme": programme, "members": members})
    return found
