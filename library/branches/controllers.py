"""Branch pages, the staff calendar page, and the branches API. Thin: parse, call, render."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from library.branches import service
from library.branches.schemas import BranchOut, CalendarExceptionIn, CalendarExceptionOut, Day, NextOpenDay, RoomOut
from library.clock import today_in
from library.errors import DomainError
from library.web.auth import permitted_at, principal_of
from library.web.forms import parse_date
from library.web.templating import page


def _today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _editor(request: Request) -> service.CalendarEditor:
    """The signed-in member of staff, with the matrix's answer for each branch's calendar."""
    principal = principal_of(request)
    return service.CalendarEditor(principal.name, principal.audit_name, permitted_at(request, "calendars.edit"))


class BranchPages(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/branches/{code:str}", name="branch")
    async def branch(self, request: Request, code: FromPath[str]) -> Template:
        today = _today(request)
        branch = await service.branch_detail(code, today)
        return page(request, "branches/branch.html", branch=branch,
                    yearly=[choice for choice in service.yearly_closure_choices(branch, today) if choice["kept"]])


class StaffCalendarPages(Controller):
    include_in_schema = False
    opt = {"permission": "desk.use"}
    path = "/staff/branches/{code:str}/calendar"

    async def _render(self, request: Request, code: str, error: DomainError | None = None,
                      values: dict[str, str] | None = None) -> Template:
        today = _today(request)
        branch = await service.branch_detail(code, today, days=42)
        return page(
            request,
            "branches/calendar.html",
            status_code=error.status if error else 200,
            branch=branch,
            exceptions=await service.upcoming_exceptions(code, today),
            yearly=service.yearly_closure_choices(branch, today),
            error=error.message() if error else None,
            error_field=error.field if error else None,
            values=values or {},
            today=today,
            may_edit=permitted_at(request, "calendars.edit")(branch["id"]),
        )

    @get("/", name="staff_calendar")
    async def show(self, request: Request, code: FromPath[str]) -> Template:
        return await self._render(request, code)

    @post("/", opt={"permission": "calendars.edit"})
    async def add(self, request: Request, code: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        values = {key: form.get(key, "") for key in ("day", "is_open", "reason_zh", "reason_en")}
        try:
            await service.add_calendar_exception(
                _editor(request),
                code,
                parse_date(values["day"], "day"),
                values["is_open"] == "open",
                values["reason_zh"],
                values["reason_en"],
                _today(request),
            )
        except DomainError as error:
            return await self._render(request, code, error, values)
        return Redirect(path=f"/staff/branches/{code}/calendar", status_code=303)

    @post("/yearly", opt={"permission": "calendars.edit"})
    async def yearly(self, request: Request, code: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        try:
            await service.set_yearly_closures(_editor(request), code, bool(form.get("closes_on_public_holidays")),
                                              form.getall("yearly_closures", []))
        except DomainError as error:
            return await self._render(request, code, error)
        return Redirect(path=f"/staff/branches/{code}/calendar", status_code=303)

    @post("/{day:str}/delete", opt={"permission": "calendars.edit"})
    async def remove(self, request: Request, code: FromPath[str], day: FromPath[str]) -> Template | Redirect:
        try:
            await service.remove_calendar_exception(_editor(request), code, parse_date(day, "day"))
        except DomainError as error:
            return await self._render(request, code, error)
        return Redirect(path=f"/staff/branches/{code}/calendar", status_code=303)


class BranchesAPI(Controller):
    path = "/api/branches"
    opt = {"permission": "public"}
    tags = ["branches"]

    @get("/", summary="Every branch, with whether it is open today")
    async def list_branches(self, request: Request) -> list[BranchOut]:
        return [BranchOut.from_view(view) for view in await service.list_branches(_today(request))]

    @get("/{code:str}", summary="One branch")
    async def one(self, request: Request, code: FromPath[str]) -> BranchOut:
        today = _today(request)
        detail = await service.branch_detail(code, today, days=1)
        detail["today"] = detail["days"][0]
        return BranchOut.from_view(detail)

    @get("/{code:str}/rooms", summary="The rooms of a branch with their capacity")
    async def rooms(self, code: FromPath[str]) -> list[RoomOut]:
        return [RoomOut(**room) for room in await service.rooms_of(code)]

    @get("/{code:str}/calendar", summary="Open and closed days, with the reason for each")
    async def calendar(
        self,
        request: Request,
        code: FromPath[str],
        start: Annotated[dt.date | None, QueryParameter()] = None,
        days: Annotated[int, QueryParameter(ge=1, le=service.MAX_CALENDAR_SPAN)] = 14,
    ) -> list[Day]:
        views = await service.calendar_days(code, start or _today(request), days)
        return [Day.from_view(view) for view in views]

    @get("/{code:str}/next-open-day", summary="The first day on or after a date the branch is open")
    async def next_open_day(
        self, request: Request, code: FromPath[str], on_or_after: Annotated[dt.date | None, QueryParameter()] = None
    ) -> NextOpenDay:
        start = on_or_after or _today(request)
        return NextOpenDay(branch=code, on_or_after=start, next_open_day=await service.next_open_day(code, start))

    @get("/{code:str}/calendar-exceptions", summary="Upcoming local closures and special openings")
    async def exceptions(self, request: Request, code: FromPath[str]) -> list[CalendarExceptionOut]:
        return [CalendarExceptionOut(**row) for row in await service.upcoming_exceptions(code, _today(request))]

    @post("/{code:str}/calendar-exceptions", opt={"permission": "calendars.edit"}, summary="Add a local closure or special opening")
    async def add_exception(self, request: Request, code: FromPath[str], data: JSONBody[CalendarExceptionIn]) -> CalendarExceptionOut:
        await service.add_calendar_exception(
            _editor(request), code, data.day, data.is_open, data.reason_zh, data.reason_en, _today(request)
        )
        return CalendarExceptionOut(day=data.day, is_open=data.is_open, reason_zh=data.reason_zh.strip(),
                                    reason_en=data.reason_en.strip(), created_by=principal_of(request).name)

    @delete("/{code:str}/calendar-exceptions/{day:date}", opt={"permission": "calendars.edit"}, summary="Remove a calendar entry")
    async def remove_exception(self, request: Request, code: FromPath[str], day: FromPath[dt.date]) -> None:
        await service.remove_calendar_exception(_editor(request), code, day)


ROUTES = [BranchPages, StaffCalendarPages, BranchesAPI]
