"""Activities pages (session pages with registration; staff planning, week grid, find a room,
check-in) and the API. The public calendar and feeds are in calendar_controllers, the reading
challenge in challenge_controllers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Response, Template

from library.accounts import service as accounts
from library.activities import challenge, service
from library.activities.feeds import patron_feed_url
from library.activities.rules import CheckInWindow
from library.activities.service import EventInput, SessionFilters
from library.branches import service as branches
from library.clock import now_utc, today_in
from library.errors import CirculationRefused, DomainError, InvalidInput, reason_views
from library.volunteers import service as volunteers
from library.web.auth import principal_of
from library.web.downloads import attachment, short_id
from library.web.templating import page

def branch_today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _local_now(request: Request) -> dt.datetime:
    return now_utc().astimezone(ZoneInfo(request.app.state.settings.time_zone)).replace(tzinfo=None)


def int_or_none(value: str | None, field: str, low: int = 0, high: int = 2000) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    # isdecimal(), not isdigit(): that also takes "²", which int() refuses.
    if not value.isdecimal() or not low <= int(value) <= high:
        raise InvalidInput("number_out_of_range", field=field, low=low, high=high)
    return int(value)


def _local_datetime(day: str | None, time: str | None, field: str) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat((day or "").strip()), dt.time.fromisoformat((time or "").strip()))
    except ValueError:
        raise InvalidInput("invalid_date", field=field) from None


def check_in_window(request: Request) -> CheckInWindow:
    settings = request.app.state.settings
    return CheckInWindow(dt.timedelta(minutes=settings.checkin_opens_minutes_before),
                         dt.timedelta(minutes=settings.checkin_closes_minutes_after))


WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def event_input(form: Any, zone: str) -> EventInput:
    """The planning form: a first session and, optionally, a weekly repeat until a date."""
    start = _local_datetime(form.get("day"), form.get("start"), "day")
    end = _local_datetime(form.get("day"), form.get("end"), "end")
    if end <= start:
        raise InvalidInput("ends_before_start", field="end")
    rrule = None
    if form.get("repeat") == "weekly":
        until = (form.get("until") or "").strip()
        try:
            until_day = dt.date.fromisoformat(until)
        except ValueError:
            raise InvalidInput("rrule_unbounded", field="until") from None
        rrule = f"FREQ=WEEKLY;BYDAY={WEEKDAYS[start.weekday()]};UNTIL={until_day:%Y%m%d}T235959"
    opens = (form.get("registration_opens") or "").strip()
    opens_at = None
    if opens:
        try:
            opens_at = dt.datetime.fromisoformat(opens).replace(tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc)
        except ValueError:
            raise InvalidInput("invalid_date", field="registration_opens") from None
    capacity = int_or_none(form.get("capacity"), "capacity", 1, 2000)
    if capacity is None:
        raise InvalidInput("required", field="capacity")
    return EventInput(
        branch_code=form.get("branch", ""), title_zh=form.get("title_zh", ""), title_en=form.get("title_en", ""),
        kind=form.get("kind", "reading_club"), description_zh=form.get("description_zh", ""),
        host=form.get("host", ""), first_start=start, duration_minutes=int((end - start).total_seconds() // 60),
        capacity=capacity, room_code=form.get("room") or None, age_min=int_or_none(form.get("age_min"), "age_min", 0, 120),
        age_max=int_or_none(form.get("age_max"), "age_max", 0, 120),
        registration_required=bool(form.get("registration_required")), registration_opens_at=opens_at,
        rrule=rrule, setup_minutes=int_or_none(form.get("setup_minutes"), "setup_minutes", 0, 240) or 0,
        teardown_minutes=int_or_none(form.get("teardown_minutes"), "teardown_minutes", 0, 240) or 0,
        override_comment=form.get("override_comment") or None, programme_uuid=form.get("programme") or None,
        skip_closed_days=not form.get("on_closed_days"))


# --- public -----------------------------------------------------------------------------------


class ActivityPages(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/activities/sessions/{uuid:str}", name="activity_session")
    async def session(self, request: Request, uuid: FromPath[str]) -> Template:
        return await session_page(request, uuid)

    @post("/activities/sessions/{uuid:str}/register", opt={"permission": "signed_in"})
    async def register(self, request: Request, uuid: FromPath[str]) -> Template:
        form = await request.form()
        try:
            outcomes = await service.register(principal_of(request), uuid, form.getall("card", []), now_utc())
        except CirculationRefused as error:
            return await session_page(request, uuid, error.status, refused=error.reasons())
        except DomainError as error:
            return await session_page(request, uuid, error.status, error=error.message())
        return await session_page(request, uuid, outcomes=outcomes)

    @post("/activities/registrations/{uuid:str}/cancel", opt={"permission": "signed_in"})
    async def cancel(self, request: Request, uuid: FromPath[str]) -> Redirect:
        form = await request.form()
        await service.cancel_registration(principal_of(request), uuid, now_utc())
        back = form.get("session", "")
        return Redirect(path=f"/activities/sessions/{back}?cancelled=1" if back
                        else "/account?done=registration_cancelled#activities", status_code=303)

    @post("/activities/registrations/{uuid:str}/accept", opt={"permission": "signed_in"})
    async def accept(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        back = form.get("session", "")
        try:
            await service.accept_offer(principal_of(request), uuid, now_utc())
        except DomainError as error:
            return await session_page(request, back, error.status, error=error.message())
        if form.get("from") == "account":  # taken on My account: back there, with the news
            return Redirect(path="/account?done=offer_taken#activities", status_code=303)
        return Redirect(path=f"/activities/sessions/{back}", status_code=303)


class ProgrammeRegistration(Controller):
    """A whole series (/activities/series/{event}) or programme (/activities/programmes/{programme})
    in one step: choose the children and the sessions, see what each child would get, confirm.
    What "the whole programme" means, and what happens when a session is full, is said on the
    page (service.register_programme decides)."""

    include_in_schema = False
    opt = {"permission": "reader"}

    @get("/activities/series/{uuid:str}/register", name="series_registration")
    async def series(self, request: Request, uuid: FromPath[str]) -> Template:
        return await self._preview(request, "series", uuid)

    @get("/activities/programmes/{uuid:str}/register", name="programme_registration")
    async def programme(self, request: Request, uuid: FromPath[str]) -> Template:
        return await self._preview(request, "programme", uuid)

    @post("/activities/series/{uuid:str}/register")
    async def register_series(self, request: Request, uuid: FromPath[str]) -> Template:
        return await self._register(request, "series", uuid)

    @post("/activities/programmes/{uuid:str}/register")
    async def register_programme(self, request: Request, uuid: FromPath[str]) -> Template:
        return await self._register(request, "programme", uuid)

    async def _page(self, request: Request, scope: str, uuid: str, cards: list[str], sessions: list[str] | None,
                    step: str, status_code: int = 200, plan: Any = None, **context: Any) -> Template:
        principal = principal_of(request)
        household = await accounts.household(principal, branch_today(request))
        everyone = [child["card_number"] for child in household["children"]] + [household["me"]["card_number"]]
        if plan is None:
            # The sessions to choose from, whoever is ticked (the household may act for all of them).
            plan = await service.preview_programme(principal, scope, uuid, everyone, now_utc())
        return page(request, "activities/programme.html", status_code=status_code, scope=scope, scope_uuid=uuid,
                    plan=plan, household=household, cards=cards, sessions=sessions, step=step,
                    refusals=reason_views(plan.refusals) if step == "preview" else [], **context)

    async def _preview(self, request: Request, scope: str, uuid: str) -> Template:
        cards = [card for card in request.query_params.getall("card", []) if card]
        sessions = request.query_params.getall("session", []) if request.query_params.get("chosen") else None
        if not cards:
            return await self._page(request, scope, uuid, [], sessions, "choose")
        try:
            plan = await service.preview_programme(principal_of(request), scope, uuid, cards, now_utc(), sessions)
        except DomainError as error:
            return await self._page(request, scope, uuid, cards, sessions, "choose", error.status,
                                    error=error.message())
        return await self._page(request, scope, uuid, cards, sessions, "preview", plan=plan)

    async def _register(self, request: Request, scope: str, uuid: str) -> Template:
        form = await request.form()
        cards, sessions = form.getall("card", []), form.getall("session", [])
        try:
            plan = await service.register_programme(principal_of(request), scope, uuid, cards, sessions, now_utc())
        except CirculationRefused as error:
            return await self._page(request, scope, uuid, cards, sessions, "choose", error.status,
                                    refused=error.reasons())
        except DomainError as error:
            return await self._page(request, scope, uuid, cards, sessions, "choose", error.status,
                                    error=error.message())
        return await self._page(request, scope, uuid, cards, sessions, "done", plan=plan)


async def session_page(request: Request, uuid: str, status_code: int = 200, **context: Any) -> Template:
    session = await service.occurrence_detail(uuid)
    principal = principal_of(request)
    household = None
    mine: list[dict[str, Any]] = []
    feed_url = None
    if principal is not None and principal.is_patron:
        household = await accounts.household(principal, branch_today(request))
        mine = [r for r in await service.registrations_of(principal, now_utc()) if r["session_uuid"] == session["uuid"]]
        feed_url = patron_feed_url(request.app.state.settings.secret_key, principal.uuid)
    skipped = []
    for text in (request.query_params.get("skipped") or "").split(",")[:60]:  # after planning: closed days left out
        try:
            skipped.append(dt.date.fromisoformat(text))
        except ValueError:
            continue
    # The volunteers helping at the session: their names for the staff, how many for everyone.
    helpers = await volunteers.helpers_of(session["uuid"])
    return page(request, "activities/session.html", status_code=status_code, session=session, household=household,
                mine=mine, feed_url=feed_url, helpers=helpers, cancelled=request.query_params.get("cancelled"),
                session_zone=ZoneInfo(request.app.state.settings.time_zone), skipped=skipped, **context)


# --- staff ------------------------------------------------------------------------------------


class StaffActivityPages(Controller):
    include_in_schema = False
    opt = {"permission": "activities.plan"}
    path = "/staff/activities"

    async def _plan(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        mine = await branches.branch_choices(principal_of(request))
        rooms = await branches.rooms_by_branch([b["code"] for b in mine])
        return page(request, "activities/plan.html", status_code=status_code, branches=mine, rooms=rooms,
                    kinds=service.KINDS, today=branch_today(request), programmes=await challenge.programmes(), **context)

    @get("/", opt={"permission": "desk.use"}, name="staff_activities")
    async def plan(self, request: Request) -> Template:
        return await self._plan(request, values={})

    @post("/")
    async def schedule(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            data = event_input(form, request.app.state.settings.time_zone)
            event = await service.schedule_event(principal_of(request), data, now_utc())
        except CirculationRefused as error:
            return await self._plan(request, error.status, refused=error.reasons(), values=dict(form))
        except DomainError as error:
            return await self._plan(request, error.status, error=error.message(), error_field=error.field,
                                    values=dict(form))
        first = (await service.occurrences_of(event))[0]
        skipped = ",".join(day.isoformat() for day in await service.skipped_days(event))
        return Redirect(path=f"/activities/sessions/{first['uuid']}?scheduled=1"
                             + (f"&skipped={skipped}" if skipped else ""), status_code=303)

    @get("/rooms", name="staff_find_room")
    async def find_room(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None,
                        day: Annotated[str | None, QueryParameter()] = None,
                        start: Annotated[str | None, QueryParameter()] = None,
                        end: Annotated[str | None, QueryParameter()] = None,
                        people: Annotated[str | None, QueryParameter()] = None) -> Template:
        mine = await branches.branch_choices(principal_of(request))
        found, error = None, None
        if day and start and end and people:
            try:
                count = int_or_none(people, "people", 1, 2000) or 1
                found = await service.find_rooms(branch or mine[0]["code"], _local_datetime(day, start, "day"),
                                                 _local_datetime(day, end, "end"), count)
            except DomainError as problem:
                error = problem.message()
        return page(request, "activities/find_room.html", branches=mine, found=found, error=error,
                    query=dict(request.query_params))

    @get("/week", opt={"permission": "desk.use"}, name="staff_week")
    async def week(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None,
                   start: Annotated[str | None, QueryParameter()] = None) -> Template:
        mine = await branches.branch_choices(principal_of(request))
        try:
            day = dt.date.fromisoformat(start) if start else branch_today(request)
        except ValueError:
            day = branch_today(request)
        branches.check_calendar_day(day, "start")  # 9999-12-31 would overflow a week later
        monday = day - dt.timedelta(days=day.weekday())
        grid = await service.week_grid(principal_of(request), branch or mine[0]["code"], monday)
        return page(request, "activities/week.html", grid=grid, branches=mine, monday=monday,
                    previous=monday - dt.timedelta(days=7), following=monday + dt.timedelta(days=7))

    @get("/sessions/{uuid:str}", opt={"permission": "activities.check_in"}, name="staff_session")
    async def session(self, request: Request, uuid: FromPath[str]) -> Template:
        return await self._session(request, uuid)

    async def _session(self, request: Request, uuid: str, status_code: int = 200, **context: Any) -> Template:
        session = await service.occurrence_detail(uuid)
        rooms = (await branches.rooms_by_branch([session["branch_code"]]))[session["branch_code"]]
        window, day = check_in_window(request), session["local_start"].date()

        def clock(when: dt.datetime) -> str:  # the day only when it is not the session's
            return f"{when:%H:%M}" if when.date() == day else f"{when:%Y-%m-%d %H:%M}"

        return page(request, "activities/staff_session.html", status_code=status_code, session=session,
                    registrations=await service.waitlist(uuid), rooms=rooms,
                    check_in_opens=clock(window.opens_at(session["local_start"])),
                    check_in_closes=clock(window.closes_at(session["local_end"])), **context)

    @post("/sessions/{uuid:str}/check-in", opt={"permission": "activities.check_in"})
    async def check_in(self, request: Request, uuid: FromPath[str]) -> Template:
        form = await request.form()
        try:
            done = await service.check_in(principal_of(request), uuid, form.get("card", ""), now_utc(),
                                          check_in_window(request))
        except CirculationRefused as error:
            return await self._session(request, uuid, error.status, check_in_refused=error.reasons())
        except DomainError as error:
            return await self._session(request, uuid, error.status, error=error.message())
        return await self._session(request, uuid, checked_in=done, turned_away=reason_views(done.turned_away))

    @post("/sessions/{uuid:str}/move")
    async def move(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        try:
            start = _local_datetime(form.get("day"), form.get("start"), "day")
            end = _local_datetime(form.get("day"), form.get("end"), "end")
            await service.move_session(principal_of(request), uuid, start, end, form.get("room") or None, now_utc(),
                                       capacity=int_or_none(form.get("capacity"), "capacity", 1, 2000),
                                       override_comment=form.get("override_comment") or None)
        except CirculationRefused as error:
            return await self._session(request, uuid, error.status, refused=error.reasons())
        except DomainError as error:
            return await self._session(request, uuid, error.status, error=error.message())
        return Redirect(path=f"/staff/activities/sessions/{uuid}", status_code=303)

    @get("/events/{uuid:str}/attendance", name="staff_attendance")
    async def attendance(self, request: Request, uuid: FromPath[str]) -> Response:
        text = await service.attendance_csv(principal_of(request), uuid, now_utc())
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers=attachment(f"attendance-{short_id(uuid)}.csv"))

    @post("/sessions/{uuid:str}/cancel")
    async def cancel(self, request: Request, uuid: FromPath[str]) -> Template:
        ended = await service.cancel_session(principal_of(request), uuid, now_utc())
        return await self._session(request, uuid, session_cancelled=ended)


# --- API --------------------------------------------------------------------------------------


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    card_numbers: list[str]


class OutcomeOut(msgspec.Struct):
    registration: str
    card_number: str
    name: str
    status: str
    position: int | None


class ProgrammeIn(msgspec.Struct, forbid_unknown_fields=True):
    card_numbers: list[str]
    # The sessions to register for (uuids); none: every session still to come.
    sessions: list[str] | None = None


class ProgrammeLineOut(msgspec.Struct):
    session: str
    card_number: str
    name: str
    status: str  # confirmed | waitlisted | already (registered before, left as it was)
    position: int | None


def _lines_out(plan: service.ProgrammePlan) -> list[ProgrammeLineOut]:
    cards = {child["patron_id"]: child["card_number"] for child in plan.children}
    status = {"seat": "confirmed", "waitlist": "waitlisted", "already": "already"}
    return [ProgrammeLineOut(session=line.session, card_number=cards[line.patron_id], name=line.name,
                             status=status[line.outcome], position=line.position) for line in plan.lines]


class SessionOut(msgspec.Struct):
    session: str
    title_zh: str
    title_en: str
    branch: str
    room: str | None
    starts: dt.datetime
    ends: dt.datetime
    capacity: int
    confirmed: int
    waitlisted: int
    seats_left: int
    status: str


def _session_out(row: dict[str, Any]) -> SessionOut:
    # Stored as the branch's wall clock; sent with the branch's UTC offset, as the schema's
    # date-time requires (the wall clock still reads as it does on the calendar).
    zone = ZoneInfo(row["time_zone"])
    return SessionOut(session=row["uuid"], title_zh=row["title_zh"], title_en=row["title_en"],
                      branch=row["branch_code"], room=row.get("room_code"),
                      starts=row["local_start"].replace(tzinfo=zone), ends=row["local_end"].replace(tzinfo=zone),
                      capacity=row["capacity"], confirmed=row["confirmed"],
                      waitlisted=row["waitlisted"], seats_left=row["seats_left"], status=row["status"])


class ActivityAPI(Controller):
    path = "/api/activities"
    opt = {"permission": "public"}
    tags = ["activities"]

    @get("/sessions", summary="Sessions to come (the branch's wall-clock times, with its UTC offset), filtered by "
                             "branch, kind and age")
    async def sessions(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None,
                       kind: Annotated[str | None, QueryParameter()] = None,
                       age: Annotated[int | None, QueryParameter(ge=0, le=120)] = None,
                       days: Annotated[int, QueryParameter(ge=1, le=366)] = 60) -> list[SessionOut]:
        start = now_utc()
        rows = await service.upcoming(SessionFilters(branch, kind, age), start, start + dt.timedelta(days=days))
        return [_session_out(row) for row in rows]

    @post("/sessions/{uuid:str}/registrations", opt={"permission": "signed_in"}, status_code=201,
          summary="Register oneself or linked children; each gets a seat or a waitlist place, or 409 with reasons")
    async def register(self, request: Request, uuid: FromPath[str], data: JSONBody[RegisterIn]) -> list[OutcomeOut]:
        outcomes = await service.register(principal_of(request), uuid, data.card_numbers, now_utc())
        return [OutcomeOut(registration=o.registration, card_number=o.card_number, name=o.name, status=o.status,
                           position=o.position) for o in outcomes]

    @post("/series/{uuid:str}/registrations", opt={"permission": "signed_in"}, status_code=201,
          summary="Register oneself or linked children for every session still to come of a series (or the sessions "
                  "named): per session a seat or a waitlist place; any refusal registers nobody (409 with reasons)")
    async def register_series(self, request: Request, uuid: FromPath[str],
                              data: JSONBody[ProgrammeIn]) -> list[ProgrammeLineOut]:
        return _lines_out(await service.register_programme(principal_of(request), "series", uuid, data.card_numbers,
                                                           data.sessions, now_utc()))

    @post("/programmes/{uuid:str}/registrations", opt={"permission": "signed_in"}, status_code=201,
          summary="The same for every session still to come of every event of a programme")
    async def register_programme(self, request: Request, uuid: FromPath[str],
                                 data: JSONBody[ProgrammeIn]) -> list[ProgrammeLineOut]:
        return _lines_out(await service.register_programme(principal_of(request), "programme", uuid,
                                                           data.card_numbers, data.sessions, now_utc()))

    @delete("/registrations/{uuid:str}", opt={"permission": "signed_in"}, status_code=204,
            summary="Cancel a registration; the first on the waitlist gets the seat")
    async def cancel(self, request: Request, uuid: FromPath[str]) -> None:
        await service.cancel_registration(principal_of(request), uuid, now_utc())


ROUTES = [ActivityPages, ProgrammeRegistration, StaffActivityPages, ActivityAPI]
