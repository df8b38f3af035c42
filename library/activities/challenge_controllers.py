"""The reading challenge's pages: public standings (names masked), a child's progress and
logging, the certificate, and the staff exports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Response, Template

from library.accounts import service as accounts
from library.activities import challenge, service
from library.activities.controllers import branch_today, int_or_none
from library.clock import now_utc
from library.errors import DomainError, InvalidInput, NotPermitted
from library.web.auth import principal_of
from library.web.downloads import attachment, short_id
from library.web.templating import page


class ChallengePages(Controller):
    """The reading challenge: public standings (names masked), a child's progress, logging, certificate."""

    include_in_schema = False
    opt = {"permission": "public"}

    @get("/activities/challenges/{uuid:str}", name="challenge")
    async def standings(self, request: Request, uuid: FromPath[str]) -> Template:
        data = await challenge.standings(uuid)
        principal = principal_of(request)
        household = await accounts.household(principal, branch_today(request)) if principal and principal.is_patron else None
        return page(request, "activities/challenge.html", programme=data["programme"], groups=data["groups"],
                    household=household)

    @get("/account/challenges", opt={"permission": "reader"}, name="my_challenges")
    async def mine(self, request: Request) -> Template:
        principal = principal_of(request)
        if not principal.is_patron:
            raise NotPermitted("patron_only")
        household = await accounts.household(principal, branch_today(request))
        people = [household["me"], *household["children"]]
        return page(request, "activities/my_challenges.html",
                    challenges=await challenge.household_challenges(principal, people, branch_today(request)))

    @get("/account/challenges/{uuid:str}", opt={"permission": "signed_in"}, name="challenge_progress")
    async def progress(self, request: Request, uuid: FromPath[str], card: Annotated[str, QueryParameter()],
                       logged: Annotated[list[str] | None, QueryParameter()] = None) -> Template:
        return await self._progress(request, uuid, card, logged=logged or [])

    async def _progress(self, request: Request, uuid: str, card: str, status_code: int = 200,
                        logged: list[str] | None = None, **context: Any) -> Template:
        principal = principal_of(request)
        today = branch_today(request)
        data = await challenge.progress(principal, uuid, card, today, logged)
        household = await accounts.household(principal, today) if principal.is_patron else None
        return page(request, "activities/progress.html", status_code=status_code, household=household,
                    **data, **context)

    @post("/account/challenges/{uuid:str}/log", opt={"permission": "signed_in"})
    async def log(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        cards = [card for card in form.getall("card", []) if card]
        # The page the form was on: the child whose progress it showed.
        child = form.get("child") or (cards[0] if cards else "")
        try:
            try:
                read_on = dt.date.fromisoformat((form.get("read_on") or "").strip())
            except ValueError:
                raise InvalidInput("invalid_date", field="read_on") from None
            logged = await challenge.log_reading_for(principal_of(request), uuid, cards, form.get("title", ""),
                                                     read_on, int_or_none(form.get("minutes"), "minutes", 1, 24 * 60),
                                                     form.get("record") or None)
        except DomainError as error:
            return await self._progress(request, uuid, child, error.status, error=error.message(),
                                        chosen=cards, title=form.get("title", ""))
        query = urlencode([("card", child), *(("logged", log) for log in logged)])
        return Redirect(path=f"/account/challenges/{uuid}?{query}", status_code=303)

    @post("/account/challenges/{uuid:str}/loans", opt={"permission": "signed_in"})
    async def log_loans(self, request: Request, uuid: FromPath[str]) -> Redirect:
        form = await request.form()
        card = form.get("card", "")
        await challenge.set_log_loans(principal_of(request), uuid, card, bool(form.get("log_loans")))
        return Redirect(path=f"/account/challenges/{uuid}?{urlencode({'card': card})}", status_code=303)

    @get("/account/challenges/{uuid:str}/certificate", opt={"permission": "signed_in"}, name="challenge_certificate")
    async def certificate(self, request: Request, uuid: FromPath[str], card: Annotated[str, QueryParameter()]) -> Template:
        data = await challenge.progress(principal_of(request), uuid, card, branch_today(request))
        if not data["finished"]:
            raise InvalidInput("challenge_not_finished", goal=data["goal"])
        return page(request, "activities/certificate.html", **data)

    @get("/staff/activities/programmes/{uuid:str}/attendance", opt={"permission": "activities.plan"}, name="programme_attendance")
    async def programme_attendance(self, request: Request, uuid: FromPath[str]) -> Response:
        text = await service.attendance_csv(principal_of(request), uuid, now_utc(), programme=True)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers=attachment(f"attendance-{short_id(uuid)}.csv"))

    @get("/staff/activities/challenges/{uuid:str}/export", opt={"permission": "readers.export"}, name="challenge_export")
    async def export(self, request: Request, uuid: FromPath[str]) -> Response:
        text = await challenge.standings_csv(principal_of(request), uuid)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers=attachment(f"challenge-{short_id(uuid)}.csv"))
