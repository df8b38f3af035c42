"""Request and response types of the branches API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec


class OpenHours(msgspec.Struct):
    opens: str
    closes: str


class Day(msgspec.Struct):
    day: dt.date
    is_open: bool
    reason: str
    hours: list[OpenHours]
    note_zh: str = ""
    note_en: str = ""

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> Day:
        return cls(
            day=view["day"],
            is_open=view["is_open"],
            reason=view["reason"],
            hours=[OpenHours(opens.strftime("%H:%M"), closes.strftime("%H:%M")) for opens, closes in view["hours"]],
            note_zh=view["note_zh"],
            note_en=view["note_en"],
        )


class RoomOut(msgspec.Struct):
    uuid: str
    code: str
    name_zh: str
    name_en: str
    capacity: int
    features: list[str]


class BranchOut(msgspec.Struct):
    uuid: str
    code: str
    name_zh: str
    name_en: str
    kind: str
    address_zh: str
    address_en: str
    time_zone: str
    closes_on_public_holidays: bool
    today: Day | None = None
    # Holidays closed every year although the branch opens on public holidays (rules.YearlyClosure).
    yearly_closures: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> BranchOut:
        return cls(
            uuid=view["uuid"],
            code=view["code"],
            name_zh=view["name_zh"],
            name_en=view["name_en"],
            kind=view["kind"],
            address_zh=view["address_zh"],
            address_en=view["address_en"],
            time_zone=view["time_zone"],
            closes_on_public_holidays=view["closes_on_public_holidays"],
            today=Day.from_view(view["today"]) if view.get("today") else None,
            yearly_closures=list(view.get("yearly_closures", [])),
        )


class NextOpenDay(msgspec.Struct):
    branch: str
    on_or_after: dt.date
    next_open_day: dt.date | None


class CalendarExceptionIn(msgspec.Struct, forbid_unknown_fields=True):
    day: dt.date
    is_open: bool = False
    reason_zh: str = ""
    reason_en: str = ""


class CalendarExceptionOut(msgspec.Struct):
    day: dt.date
    is_open: bool
    reason_zh: str
    reason_en: str
    created_by: str
