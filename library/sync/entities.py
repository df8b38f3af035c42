"""What crosses between nodes: an entity's image, and writing images back into tables.

An image is one row as JSON, without its local id: references to other rows are their
UUIDs (ids differ from node to node), dates and times are ISO text. A branch's image also
carries its opening periods and calendar exceptions, which have no identity of their own.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from piccolo.columns import (JSONB, UUID, Boolean, Date, Integer, Serial, Text, Time, Timestamp,
                             Timestamptz, Varchar)
from piccolo.table import Table

from library import db
from library.accounts.tables import GuardianLink, Patron, PinChange, StaffBranch, StaffMember
from library.activities.tables import Event, Occurrence, Programme, ProgrammeParticipant, ReadingLog, Registration
from library.branches.tables import Branch, Room
from library.catalog.tables import Item, Record
from library.loans.tables import CirculationRule, Hold, Loan, Transit
from library.sync.tables import Transfer

IN_CHUNK = 500  # uuids per "IN (...)" list


@dataclass(frozen=True)
class Kind:
    name: str
    table: type[Table]
    refs: dict[str, str] = field(default_factory=dict)  # column -> kind of the row it points at
    # What names one row across nodes: its uuid, or (a row without one) the references it joins.
    key: tuple[str, ...] = ("uuid",)

    @property
    def table_name(self) -> str:
        return self.table._meta.tablename

    # Worked out once per kind: a feed page or an applied page goes through them for every row.
    @cached_property
    def columns(self) -> list[Any]:
        return [c for c in self.table._meta.columns if not isinstance(c, Serial) and c._meta.name != "id"]

    @cached_property
    def column_names(self) -> list[str]:
        return [c._meta.db_column_name for c in self.columns]

    @cached_property
    def timestamp_columns(self) -> tuple[str, ...]:
        """The instants a node's clock wrote when something happened (see rules.clamp_times); not
        a deadline such as a loan's `due_at`, which lies in the future by nature."""
        return tuple(c._meta.db_column_name for c in self.columns
                     if isinstance(c, Timestamptz) and c._meta.db_column_name not in DEADLINES)

    @cached_property
    def readers(self) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
        """(column, its value as JSON) for `to_image`: the columns whose values need converting
        (text, whole numbers and booleans come from both drivers as JSON already)."""
        return tuple((c._meta.db_column_name, _reader(c)) for c in self.columns
                     if c._meta.db_column_name in self.refs or not isinstance(c, _AS_IS))

    def writers(self, sqlite: bool) -> tuple[tuple[str, str | None, bool, Callable[[Any], Any]], ...]:
        """(column, kind it references or None, nullable, the image's value as the driver wants it) for `row_of`."""
        key = (self.name, sqlite)
        plan = _WRITERS.get(key)
        if plan is None:
            plan = _WRITERS[key] = tuple(
                (c._meta.db_column_name, self.refs.get(c._meta.db_column_name), bool(c._meta.null), _writer(c, sqlite))
                for c in self.columns)
        return plan


_WRITERS: dict[tuple[str, bool], tuple] = {}
DEADLINES = ("due_at",)
_AS_IS = (Varchar, Text, Integer, Boolean)


# In the order a receiver writes them: every reference points at a kind written before it.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("branch", Branch),
    Kind("circulation_rule", CirculationRule, {"branch": "branch"}),
    Kind("patron", Patron, {"home_branch": "branch"}),
    Kind("guardian_link", GuardianLink, {"guardian": "patron", "child": "patron"}),
    Kind("pin_change", PinChange, {"patron": "patron", "branch": "branch"}),
    Kind("record", Record),
    Kind("item", Item, {"record": "record", "home_branch": "branch", "current_branch": "branch"}),
    Kind("loan", Loan, {"item": "item", "patron": "patron", "branch": "branch", "rule": "circulation_rule",
                        "returned_branch": "branch"}),
    Kind("hold", Hold, {"record": "record", "patron": "patron", "pickup_branch": "branch", "item": "item"}),
    Kind("transit", Transit, {"item": "item", "from_branch": "branch", "to_branch": "branch", "hold": "hold"}),
    Kind("transfer", Transfer, {"item": "item", "from_branch": "branch", "to_branch": "branch"}),
)}
ORDER = {name: position for position, name in enumerate(KINDS)}
# What a branch sends up: policy and calendars are the central library's to decide.
UPLOADED = ("patron", "guardian_link", "pin_change", "record", "item", "loan", "hold", "transit", "transfer")
# What the feed sends down: a PIN change is an operation a branch reports, not state to copy.
FED = tuple(name for name in KINDS if name != "pin_change")

# A branch's own rows, which no feed carries: they exist on the branch box only, so the box
# sends them to the central node's vault (library/sync/vault.py) to be rebuilt from after a
# dead disk. In the order a recovering box writes them back.
VAULT_KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("room", Room, {"branch": "branch"}),
    Kind("staff_member", StaffMember),
    Kind("staff_branch", StaffBranch, {"staff": "staff_member", "branch": "branch"}, key=("staff", "branch")),
    Kind("programme", Programme, {"branch": "branch"}),
    Kind("event", Event, {"branch": "branch", "room": "room", "programme": "programme"}),
    Kind("occurrence", Occurrence, {"event": "event", "room": "room"}),
    Kind("registration", Registration, {"occurrence": "occurrence", "patron": "patron", "registered_by": "patron"}),
    Kind("reading_log", ReadingLog, {"programme": "programme", "patron": "patron", "record": "record"}),
    Kind("programme_participant", ProgrammeParticipant, {"programme": "programme", "patron": "patron"},
         key=("programme", "patron")),
)}


def kind_named(name: str) -> Kind:
    """A replicated kind or a vault kind: what a reference names."""
    return KINDS[name] if name in KINDS else VAULT_KINDS[name]
# A PIN verifier as the accounts' hasher makes it (Argon2id): all a pin_change may carry.
VERIFIER_PREFIX = "$argon2id$"


class MalformedImage(ValueError):
    """An image that cannot be a row of its kind: the whole upload is refused."""


# --- reading ------------------------------------------------------------------------------


def _json_value(column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column, JSONB):
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid_module.UUID):
        return str(value)
    return value


def _reader(column) -> Callable[[Any], Any]:
    """`_json_value` for one column, its type looked at once."""
    if isinstance(column, JSONB):
        return lambda value: json.loads(value) if isinstance(value, str) else value

    def plain(value: Any) -> Any:
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, uuid_module.UUID):
            return str(value)
        return value

    return plain


def select_sql(kind: Kind, where: str) -> str:
    """The rows of `kind` as images: its own columns, references as the referenced uuid."""
    parts, joins = [], []
    for column in kind.columns:
        name = column._meta.db_column_name
        if name in kind.refs:
            target = kind_named(kind.refs[name]).table_name
            joins.append(f'LEFT JOIN {target} ref_{name} ON ref_{name}.id = t."{name}"')
            parts.append(f'ref_{name}.uuid AS "{name}"')
        else:
            parts.append(f't."{name}"')
    return f"SELECT t.id AS sync_local_id, {', '.join(parts)} FROM {kind.table_name} t {' '.join(joins)} WHERE {where}"


def to_image(kind: Kind, row: dict[str, Any]) -> dict[str, Any]:
    image = {name: row[name] for name in kind.column_names}
    for name, read in kind.readers:
        value = image[name]
        if value is not None:
            image[name] = read(value)
    return image


async def _calendars(branch_ids: list[int]) -> dict[int, dict[str, list]]:
    found: dict[int, dict[str, list]] = {branch_id: {"opening_periods": [], "calendar_exceptions": []}
                                         for branch_id in branch_ids}
    if not branch_ids:
        return found
    marks = ", ".join("{}" for _ in branch_ids)
    for row in await Branch.raw(f"SELECT branch, weekday, opens, closes FROM opening_period "
                                f"WHERE branch IN ({marks}) ORDER BY branch, weekday, opens", *branch_ids):
        found[row["branch"]]["opening_periods"].append(
            {"weekday": row["weekday"], "opens": row["opens"].isoformat(), "closes": row["closes"].isoformat()})
    for row in await Branch.raw(f"SELECT branch, day, is_open, reason_zh, reason_en, created_by "
                                f"FROM calendar_exception WHERE branch IN ({marks}) ORDER BY branch, day",
                                *branch_ids):
        found[row["branch"]]["calendar_exceptions"].append(
            {"day": row["day"].isoformat(), "is_open": bool(row["is_open"]), "reason_zh": row["reason_zh"],
             "reason_en": row["reason_en"], "created_by": row["created_by"]})
    return found


async def images_where(kind: Kind, where: str, *args: Any) -> list[tuple[int, dict[str, Any]]]:
    """(local id, image) of the rows of `kind` that `where` (on alias t) selects."""
    rows = await kind.table.raw(select_sql(kind, where), *args)
    images = [(row["sync_local_id"], to_image(kind, row)) for row in rows]
    if kind.name == "branch" and images:
        calendars = await _calendars([local_id for local_id, _ in images])
        for local_id, image in images:
            image.update(calendars[local_id])
    return images


async def images_of(kind: Kind, uuids: list[str]) -> dict[str, dict[str, Any]]:
    """The current images of these entities; an entity that is gone is missing from the answer."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(uuids), IN_CHUNK):
        chunk = uuids[start:start + IN_CHUNK]
        marks = ", ".join("{}" for _ in chunk)
        for _, image in await images_where(kind, f"t.uuid IN ({marks})", *chunk):
            found[image["uuid"]] = image
    return found


async def local_ids(kind_name: str, uuids: set[str]) -> dict[str, int]:
    table = kind_named(kind_name).table_name
    found: dict[str, int] = {}
    wanted = sorted(u for u in uuids if u)
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start:start + IN_CHUNK]
        marks = ", ".join("{}" for _ in chunk)
        for row in await Branch.raw(f"SELECT id, uuid FROM {table} WHERE uuid IN ({marks})", *chunk):
            found[str(row["uuid"])] = row["id"]
    return found


# --- writing ------------------------------------------------------------------------------


def _python_value(column, value: Any, sqlite: bool) -> Any:
    """An image's JSON value as the driver wants it for `column`; MalformedImage if it cannot be."""
    name = column._meta.db_column_name
    try:
        if value is None:
            if column._meta.null:
                return None
            raise MalformedImage(f"{name} may not be empty")
        if isinstance(column, JSONB):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(column, Timestamptz):
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise MalformedImage(f"{name} needs a time zone")
            return moment.astimezone(dt.timezone.utc)
        if isinstance(column, Timestamp):  # a wall-clock time (an activity's local start): no zone
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                raise MalformedImage(f"{name} is a local time, without a time zone")
            return moment
        if isinstance(column, Date):
            return dt.date.fromisoformat(value)
        if isinstance(column, Time):
            return dt.time.fromisoformat(value)
        if isinstance(column, UUID):
            text = str(uuid_module.UUID(str(value)))
            return text if sqlite else uuid_module.UUID(text)
        if isinstance(column, Boolean):
            if not isinstance(value, bool):
                raise MalformedImage(f"{name} must be true or false")
            return value
        if isinstance(column, Integer):
            if isinstance(value, bool) or not isinstance(value, int):
                raise MalformedImage(f"{name} must be a whole number")
            return value
        if isinstance(column, (Varchar, Text)):
            if not isinstance(value, str):
                raise MalformedImage(f"{name} must be text")
            length = getattr(column, "length", None)
            if length and len(value) > length:
                raise MalformedImage(f"{name} is longer than {length}")
            return value
    except (TypeError, ValueError) as error:
        if isinstance(error, MalformedImage):
            raise
        raise MalformedImage(f"{name}: {error}") from None
    return value


_UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?\+00:00")
_json_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(value, ensure_ascii=False), made once


def _writer(column, sqlite: bool) -> Callable[[Any], Any]:
    """`_python_value` for one column, its type looked at once: the common, well-formed value
    is converted here; anything else goes to `_python_value`, which converts it or says why not."""

    def slow(value: Any) -> Any:
        return _python_value(column, value, sqlite)

    if isinstance(column, JSONB):
        return lambda value: slow(value) if value is None else ("[]" if value == [] else _json_text(value))
    if isinstance(column, Timestamptz):
        utc = dt.timezone.utc

        def moment(value: Any) -> Any:
            if type(value) is str:
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    return slow(value)
                if parsed.tzinfo is not None:
                    return parsed.astimezone(utc)
            return slow(value)

        if not sqlite:
            return moment

        def moment_text(value: Any) -> Any:
            # SQLite keeps an instant as the text str() gives of it in UTC (Piccolo's adapter): an image's
            # UTC instant in isoformat's own shape becomes that text here, not in the adapter (per value,
            # on the database's thread).
            if type(value) is str and _UTC_ISO.fullmatch(value):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    return slow(value)
                if parsed.microsecond or len(value) == 25:
                    return value[:10] + " " + value[11:]
            return moment(value)

        return moment_text
    if isinstance(column, (Date, Time)):
        parse = dt.date.fromisoformat if isinstance(column, Date) else dt.time.fromisoformat
        as_text = sqlite and isinstance(column, Date)  # as Piccolo's adapter writes a date

        def day_or_time(value: Any) -> Any:
            if type(value) is str:
                try:
                    parsed = parse(value)
                except ValueError:
                    return slow(value)
                return parsed.isoformat() if as_text else parsed
            return slow(value)

        return day_or_time
    if isinstance(column, UUID):
        def identifier(value: Any) -> Any:
            if type(value) is str:
                try:
                    text = str(uuid_module.UUID(value))
                except ValueError:
                    return slow(value)
                return text if sqlite else uuid_module.UUID(text)
            return slow(value)

        return identifier
    if isinstance(column, Boolean):
        return lambda value: value if type(value) is bool else slow(value)
    if isinstance(column, Integer):
        return lambda value: value if type(value) is int else slow(value)
    if isinstance(column, (Varchar, Text)):
        length = getattr(column, "length", None)
        if length:
            return lambda value: value if type(value) is str and len(value) <= length else slow(value)
        return lambda value: value if type(value) is str else slow(value)
    return slow


def check_image(kind: Kind, image: Any) -> None:
    """Refuse an image that is not a row of `kind` (before anything is written)."""
    if not isinstance(image, dict):
        raise MalformedImage(f"a {kind.name} must be an object")
    for column in kind.columns:
        name = column._meta.db_column_name
        if name not in image:
            raise MalformedImage(f"{kind.name}.{name} is missing")
        if name in kind.refs:
            if image[name] is not None:
                try:
                    uuid_module.UUID(str(image[name]))
                except ValueError:
                    raise MalformedImage(f"{kind.name}.{name} is not a UUID") from None
            elif not column._meta.null:
                raise MalformedImage(f"{kind.name}.{name} may not be empty")
        else:
            _python_value(column, image[name], True)
    if kind.name == "pin_change":
        verifier = image.get("pin_hash")
        if not isinstance(verifier, str) or not verifier.startswith(VERIFIER_PREFIX) or len(verifier) > 255:
            raise MalformedImage("pin_change.pin_hash must be an Argon2id verifier")
    if kind.name == "branch":
        for key in ("opening_periods", "calendar_exceptions"):
            if not isinstance(image.get(key, []), list):
                raise MalformedImage(f"branch.{key} must be a list")


@dataclass
class Written:
    applied: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (uuid, why)


async def resolve_refs(kind: Kind, images: list[dict[str, Any]],
                       aliases: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    wanted: dict[str, set[str]] = {}
    for image in images:
        for column, target in kind.refs.items():
            if image.get(column):
                value = (aliases or {}).get(image[column], image[column])
                wanted.setdefault(target, set()).add(value)
    return {target: await local_ids(target, uuids) for target, uuids in wanted.items()}


# References a node may write as empty when it lacks their row (the rule that applied, the
# hold a transit was for, the copy a hold was given): everything else is refused.
DROPPABLE = {"loan": ("rule",), "transit": ("hold",), "hold": ("item",)}


def row_of(kind: Kind, image: dict[str, Any], ids: dict[str, dict[str, int]], sqlite: bool,
           aliases: dict[str, str] | None = None) -> tuple | str:
    """The tuple to write, or why it cannot be written (a reference this node lacks)."""
    values = []
    aliases = aliases or {}
    for name, target, nullable, write in kind.writers(sqlite):
        if target is not None:
            ref = image.get(name)
            if ref is None:
                values.append(None)
                continue
            ref = aliases.get(ref, ref)
            local = ids.get(target, {}).get(ref)
            if local is None:
                # Only a pointer that says nothing about who or what may be dropped: a loan
                # whose reader is missing here is refused, not written as nobody's loan.
                if nullable and name in DROPPABLE.get(kind.name, ()):
                    values.append(None)
                    continue
                return f"missing_{target}"
            values.append(local)
        else:
            values.append(write(image.get(name)))
    return tuple(values)


def upsert_sql(kind: Kind) -> str:
    names = kind.column_names
    quoted = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("{}" for _ in names)
    updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in kind.key)
    conflict = ", ".join(f'"{n}"' for n in kind.key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"  # a row that is all key (staff_branch)
    return f"INSERT INTO {kind.table_name} ({quoted}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"


async def savepoint(name: str) -> None:
    await Branch.raw(f"SAVEPOINT {name}")


async def release(name: str) -> None:
    await Branch.raw(f"RELEASE SAVEPOINT {name}")


async def rollback_to(name: str) -> None:
    await Branch.raw(f"ROLLBACK TO SAVEPOINT {name}")
    await Branch.raw(f"RELEASE SAVEPOINT {name}")


async def _write_calendar(branch_uuid: str, image: dict[str, Any]) -> None:
    branch_id = (await local_ids("branch", {branch_uuid}))[branch_uuid]
    await Branch.raw("DELETE FROM opening_period WHERE branch = {}", branch_id)
    await Branch.raw("DELETE FROM calendar_exception WHERE branch = {}", branch_id)
    for period in image.get("opening_periods", []):
        await Branch.raw("INSERT INTO opening_period (branch, weekday, opens, closes) VALUES ({}, {}, {}, {})",
                         branch_id, int(period["weekday"]), dt.time.fromisoformat(period["opens"]),
                         dt.time.fromisoformat(period["closes"]))
    for exception in image.get("calendar_exceptions", []):
        await Branch.raw("INSERT INTO calendar_exception (branch, day, is_open, reason_zh, reason_en, created_by, "
                         "created_at) VALUES ({}, {}, {}, {}, {}, {}, {})", branch_id,
                         dt.date.fromisoformat(exception["day"]), bool(exception["is_open"]),
                         str(exception.get("reason_zh", "")), str(exception.get("reason_en", "")),
                         str(exception.get("created_by", "")), dt.datetime.now(dt.timezone.utc))


async def write_images(kind: Kind, images: list[dict[str, Any]], aliases: dict[str, str] | None = None,
                       guarded: bool = True) -> Written:
    """Upsert images by uuid in the current transaction.

    All rows in one statement first; if the database refuses one (a barcode another copy
    already has here, say), row by row, each in a savepoint, so the rest are written and
    the refused ones are named.

    `guarded=False` leaves the savepoints out (on SQLite a savepoint copies every page the
    bulk statement touches into a sub-journal: a third of a big page's write): a refusal
    then fails the caller's transaction, which must roll it all back and write it again
    guarded.
    """
    written = Written()
    if not images:
        return written
    sqlite = db.is_sqlite()
    ids = await resolve_refs(kind, images, aliases)
    rows, uuids = [], []
    for image in images:
        row = row_of(kind, image, ids, sqlite, aliases)
        if isinstance(row, str):
            written.refused.append((image["uuid"], row))
        else:
            rows.append(row)
            uuids.append(image["uuid"])
    sql = upsert_sql(kind)
    if not guarded:
        await db.executemany(sql, rows)
        written.applied.extend(uuids)
        return await _with_calendars(kind, images, written)
    await savepoint("sync_bulk")
    try:
        await db.executemany(sql, rows)
        await release("sync_bulk")
        written.applied.extend(uuids)
    except Exception as error:  # noqa: BLE001 - any refusal sends us row by row
        if not is_refusal(error):
            raise
        await rollback_to("sync_bulk")
        for row, entity in zip(rows, uuids):
            await savepoint("sync_row")
            try:
                await db.executemany(sql, [row])
                await release("sync_row")
                written.applied.append(entity)
            except Exception as row_error:  # noqa: BLE001
                if not is_refusal(row_error):
                    raise
                await rollback_to("sync_row")
                written.refused.append((entity, _refusal_reason(row_error)))
    return await _with_calendars(kind, images, written)


async def _with_calendars(kind: Kind, images: list[dict[str, Any]], written: Written) -> Written:
    if kind.name == "branch":
        by_uuid = {image["uuid"]: image for image in images}
        for entity in written.applied:
            await _write_calendar(entity, by_uuid[entity])
    return written


async def delete_entity(kind: Kind, entity_uuid: str) -> str | None:
    """Delete one entity (a tombstone); why not, if the database refuses (rows still point at it)."""
    await savepoint("sync_delete")
    try:
        await Branch.raw(f"DELETE FROM {kind.table_name} WHERE uuid = {{}}", entity_uuid)
        await release("sync_delete")
        return None
    except Exception as error:  # noqa: BLE001
        if not is_refusal(error):
            raise
        await rollback_to("sync_delete")
        return _refusal_reason(error)


def is_refusal(error: BaseException) -> bool:
    import sqlite3

    if isinstance(error, sqlite3.IntegrityError):
        return True
    return str(getattr(error, "sqlstate", "") or "").startswith("23")


def _refusal_reason(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0][:200] if text else type(error).__name__
