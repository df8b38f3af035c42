"""Volunteers' pages: /volunteer (a volunteer's own shifts, sign-up, check-in and out, own hours
and certificate) and /staff/volunteers (planning shifts, everyone's hours, their CSV).

Every handler names its permission (library.accounts.permissions), which the app's one guard
(library.web.auth.permission_guard) reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from library.clock import now_utc, today_in
from library.errors import DomainError, InvalidInput
from library.i18n import N_, gettext
from library.spreadsheet import csv_text
from library.volunteers import service
from library.volunteers.rules import KINDS, MAX_HEAD_COUNT
from library.volunteers.service import ShiftInput
from library.web.auth import principal_of
from library.web.downloads import attachment
from library.web.forms import parse_date
from library.web.templating import page

PLAN = {"permission": "volunteers.plan"}
SERVE = {"permission": "volunteers.serve"}
KIND_LABELS = {"desk": N_("Desk"), "after_school": N_("After-school supervision (课后看护)"),
               "activity_helper": N_("Activity helper")}


def _today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _local(day: str | None, time: str | None, field: str) -> dt.datetime:
    date = parse_date(day, "day")
    try:
        return dt.datetime.combine(date, dt.time.fromisoformat((time or "").strip()))
    except ValueError:
        raise InvalidInput("required", field=field) from None


def _whole(value: str | None, field: str) -> int:
    text = (value or "").strip()
    if not text.isdigit() or len(text) > 4:
        raise InvalidInput("shift_bad_head_count", field=field, limit=MAX_HEAD_COUNT)
    return int(text)


def _period(request: Request) -> tuple[dt.date, dt.date]:
    """?from=&to= (dates), this year so far by default."""
    today = _today(request)
    first = request.query_params.get("from") or f"{today.year}-01-01"
    last = request.query_params.get("to") or today.isoformat()
    first_day, last_day = parse_date(first, "from"), parse_date(last, "to")
    if last_day < first_day or (last_day - first_day).days > 3660:
        raise InvalidInput("invalid_report_period", field="from")
    return first_day, last_day


class VolunteerPages(Controller):
    """A volunteer's own shifts. The service lets a volunteer act on their own sign-ups only."""

    include_in_schema = False
    path = "/volunteer"

    async def _home(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        principal = principal_of(request)
        today = _today(request)
        board = await service.shifts(principal, request.query_params.get("branch"), today)
        # This month's hours so far: a volunteer's own (the staff have /staff/volunteers/hours).
        mine = await service.volunteer_hours(principal, None, today.replace(day=1), today) \
            if _is_volunteer(principal) else None
        return page(request, "volunteers/mine.html", status_code=status_code, board=board, mine=mine,
                    kinds=KIND_LABELS, **context)

    @get("/", name="volunteer_home", opt=SERVE)
    async def home(self, request: Request) -> Template:
        return await self._home(request)

    async def _act(self, request: Request, action, uuid: str) -> Template | Redirect:
        try:
            await action(principal_of(request), uuid, now_utc())
        except DomainError as error:
            return await self._home(request, error.status, error=error.message())
        return Redirect(path="/volunteer/?done=1", status_code=303)

    @post("/shifts/{uuid:str}/sign-up", opt=SERVE)
    async def sign_up(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._act(request, service.sign_up, uuid)

    @post("/sign-ups/{uuid:str}/withdraw", opt=SERVE)
    async def withdraw(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._act(request, service.withdraw, uuid)

    @post("/sign-ups/{uuid:str}/check-in", opt=SERVE)
    async def check_in(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._act(request, service.check_in, uuid)

    @post("/sign-ups/{uuid:str}/check-out", opt=SERVE)
    async def check_out(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._act(request, service.check_out, uuid)

    @get("/certificate", name="volunteer_certificate", opt=SERVE)
    async def certificate(self, request: Request) -> Template:
        first, last = _period(request)
        hours = await service.volunteer_hours(principal_of(request), None, first, last)
        return page(request, "volunteers/certificate.html", hours=hours, back="/volunteer/")


def _is_volunteer(principal) -> bool:
    return principal is not None and principal.role == "volunteer"


class StaffVolunteerPages(Controller):
    """The staff's side: planning shifts, signing volunteers up, correcting times, hours."""

    include_in_schema = False
    path = "/staff/volunteers"

    async def _plan(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        principal = principal_of(request)
        branch = request.query_params.get("branch")
        try:
            first = parse_date(request.query_params.get("from"), "from")
        except InvalidInput:
            first = _today(request)
        board = await service.shifts(principal, branch, first)
        people = await service.volunteers_of(principal, board["branch"]["code"])
        context.setdefault("values", {})
        return page(request, "volunteers/plan.html", status_code=status_code, board=board, people=people,
                    kinds=KIND_LABELS, kind_order=KINDS, first=first, today=_today(request), **context)

    @get("/", name="staff_volunteers", opt=PLAN)
    async def plan(self, request: Request) -> Template:
        return await self._plan(request)

    @post("/shifts", opt=PLAN)
    async def plan_shift(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            data = ShiftInput(branch_code=form.get("branch") or "", kind=form.get("kind") or "",
                              local_start=_local(form.get("day"), form.get("start"), "start"),
                              local_end=_local(form.get("day"), form.get("end"), "end"),
                              needed=_whole(form.get("needed"), "needed"), note=form.get("note") or "",
                              occurrence_uuid=(form.get("session") or "").strip() or None)
            await service.plan_shift(principal_of(request), data, now_utc())
        except DomainError as error:
            return await self._plan(request, error.status, error=error.message(), values=dict(form))
        return Redirect(path=f"/staff/volunteers/?branch={data.branch_code}&from={data.local_start.date()}",
                        status_code=303)

    async def _do(self, request: Request, work) -> Template | Redirect:
        try:
            await work()
        except DomainError as error:
            return await self._plan(request, error.status, error=error.message())
        return Redirect(path="/staff/volunteers/?done=1", status_code=303)

    @post("/shifts/{uuid:str}/sign-up", opt=PLAN)
    async def sign_up(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        username = (form.get("username") or "").strip()
        if not username:
            return await self._plan(request, 422, error=InvalidInput("required", field="username").message())
        return await self._do(request, lambda: service.sign_up(principal_of(request), uuid, now_utc(), username))

    @post("/sign-ups/{uuid:str}/withdraw", opt=PLAN)
    async def withdraw(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._do(request, lambda: service.withdraw(principal_of(request), uuid, now_utc()))

    @post("/sign-ups/{uuid:str}/times", opt=PLAN)
    async def correct(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()

        async def work() -> None:
            came = _local(form.get("day"), form.get("in"), "in")
            went = _local(form.get("day"), form.get("out"), "out") if (form.get("out") or "").strip() else None
            await service.correct_times(principal_of(request), uuid, came, went, now_utc())

        return await self._do(request, work)

    @post("/profiles", opt=PLAN)
    async def link_reader(self, request: Request) -> Template | Redirect:
        form = await request.form()
        return await self._do(request, lambda: service.link_reader(
            principal_of(request), form.get("branch") or None, form.get("username") or "", form.get("card_number"),
            now_utc()))

    async def _hours(self, request: Request) -> dict[str, Any]:
        month = request.query_params.get("month") or f"{_today(request):%Y-%m}"
        first, last = service.month_range(month)
        report = await service.branch_hours(principal_of(request), request.query_params.get("branch"), first, last)
        report["month"] = month
        return report

    @get("/hours", name="staff_volunteer_hours", opt=PLAN)
    async def hours(self, request: Request) -> Template:
        return page(request, "volunteers/hours.html", report=await self._hours(request))

    @get("/hours.csv", opt=PLAN)
    async def hours_csv(self, request: Request) -> Response:
        report = await self._hours(request)
        headings = [gettext(N_("Branch")), gettext(N_("Month")), gettext(N_("Volunteer")), gettext(N_("Shifts")),
                    gettext(N_("Service hours"))]
        return Response(csv_text(service.hours_csv_rows(report, headings)), media_type="text/csv; charset=utf-8",
                        headers=attachment(f"volunteer-hours-{report['branch']['code']}-{report['month']}.csv"))

    @get("/certificate/{username:str}", opt=PLAN)
    async def certificate(self, request: Request, username: FromPath[str]) -> Template:
        first, last = _period(request)
        hours = await service.volunteer_hours(principal_of(request), username, first, last)
        return page(request, "volunteers/certificate.html", hours=hours, back="/staff/volunteers/hours")


ROUTES = [VolunteerPages, StaffVolunteerPages]
