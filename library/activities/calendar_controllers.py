"""The public activities calendar (list, week and month, filters in the address) and the
iCalendar feeds of a branch, a room and a reader."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Annotated
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Response, Template

from library.activities import challenge, feed_service, rules, service
from library.activities.controllers import branch_today
from library.activities.service import SessionFilters
from library.branches import service as branches
from library.clock import now_utc
from library.errors import InvalidInput
from library.web.templating import page

CALENDAR = "text/calendar; charset=utf-8"
VIEWS = ("list", "week", "month")


class CalendarPages(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/activities", name="activities")
    async def calendar(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None,
                       kind: Annotated[str | None, QueryParameter()] = None,
                       age: Annotated[str | None, QueryParameter()] = None,
                       view: Annotated[str, QueryParameter()] = "list",
                       shown: Annotated[str | None, QueryParameter(name="from")] = None) -> Template:
        today = branch_today(request)
        age_value = int(age) if age and age.isdecimal() and int(age) <= 120 else None
        filters = SessionFilters(branch or None, kind or None, age_value)
        view = view if view in VIEWS else "list"
        try:
            day = dt.date.fromisoformat(shown) if shown else today
        except ValueError:
            raise InvalidInput("invalid_date", field="from") from None
        branches.check_calendar_day(day, "from")
        span = rules.calendar_span(view, day, today)
        start = dt.datetime.combine(span.first, dt.time(), tzinfo=dt.timezone.utc) - dt.timedelta(hours=8)
        sessions = await service.upcoming(filters, start, start + dt.timedelta(days=(span.last - span.first).days))

        def address(first: dt.date | None, shown_as: str = view) -> str:
            # The filters stay in the address: a parent can bookmark "next week, ages 3-5, Zhenxing".
            query = {"branch": filters.branch, "kind": filters.kind, "age": filters.age, "view": shown_as,
                     "from": first.isoformat() if first else None}
            return "/activities?" + urlencode({key: value for key, value in query.items() if value is not None})

        navigation = {"previous": address(span.previous), "today": address(None), "next": address(span.next)} \
            if view != "list" else None
        # Switching views keeps the filters and the days shown (the list always starts today).
        shown_day = None if view == "list" else span.month or span.first
        views = {name: address(None if name == "list" else shown_day, name) for name in VIEWS}
        # The list reads as an agenda: a heading per day, that day's sessions under it.
        agenda = [(day, list(group)) for day, group in groupby(sessions, key=lambda s: s["local_start"].date())]
        return page(request, "activities/calendar.html", sessions=sessions, filters=filters, view=view, span=span,
                    navigation=navigation, views=views, agenda=agenda,
                    branches=await branches.branch_choices(), today=today, kinds=service.KINDS,
                    programmes=await challenge.programmes())

    # Feed addresses end in .ics (calendar apps like it); the router matches whole segments.
    @get("/activities/feeds/{name:str}", name="activity_feed")
    async def branch_feed(self, name: FromPath[str], room: Annotated[str | None, QueryParameter()] = None) -> Response:
        body = await feed_service.feed(name.removesuffix(".ics"), room, now_utc())
        # Asked again each time (no-cache), answered 304 when unchanged (library/web/conditional.py).
        return Response(body, media_type=CALENDAR,
                        headers={"ETag": feed_service.feed_etag(body), "Cache-Control": "no-cache"})

    @get("/activities/feeds/readers/{name:str}", opt={"permission": "credential"}, name="activity_patron_feed")
    async def patron_feed(self, request: Request, name: FromPath[str],
                          token: Annotated[str, QueryParameter()] = "") -> Response:
        secret = request.app.state.settings.secret_key
        body = await feed_service.patron_feed(name.removesuffix(".ics"), token, secret, now_utc())
        # A reader's own appointments: no shared cache keeps them.
        return Response(body, media_type=CALENDAR,
                        headers={"ETag": feed_service.feed_etag(body), "Cache-Control": "private, no-cache"})
