"""The self-check page on a tablet by the door (/selfcheck), and the staff page that sets tablets up.

Thin: each handler reads the form, calls one function of `library.selfcheck.stations` (which
asks the loans services), and answers with a page or a redirect (post, redirect, get: a
reload never lends twice). What a reader did in this visit lives in the visit's session
(Litestar's encrypted, signed, HttpOnly cookie): their card, when they last tapped, the
books scanned with their outcome as reason codes, so the page is shown in whichever
language is chosen. Forms carry the CSRF token; scripts only keep the scan field focused
and end an idle session (library/static/selfcheck.js), and the server ends it too.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from types import SimpleNamespace
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from library.accounts.controllers import STAFF_HOME_SECTIONS
from library.accounts.principal import Principal
from library.branches import service as branches
from library.clock import now_utc
from library.errors import CirculationRefused, DomainError, reason_views
from library.i18n import current_language
from library.selfcheck import activity, stations
from library.selfcheck.stations import Station
from library.settings import LANGUAGES
from library.web.auth import principal_of
from library.web.errors import refusal_headers
from library.web.templating import page

TOKEN_COOKIE = "library_selfcheck"
# Browsers keep a cookie at most 400 days; staff issue a new token to a tablet after that.
TOKEN_MAX_AGE = 400 * 24 * 3600
STATE = "selfcheck"  # the session key of the reader at the station
IDLE_LANGUAGE = "selfcheck_lang"  # the language chosen on the station's waiting screen
RESULTS_KEPT = 12  # the session is a cookie: a visit shows its last dozen scans


def _settings(request: Request):
    return request.app.state.settings


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _session(request: Request) -> dict[str, Any]:
    session = request.scope.get("session")
    return dict(session) if isinstance(session, dict) else {}


def _store(request: Request, **changes: Any) -> None:
    """Change the visit's session, keeping the rest (the CSRF nonce above all); None removes."""
    session = _session(request)
    for key, value in changes.items():
        if value is None:
            session.pop(key, None)
        else:
            session[key] = value
    request.set_session(session)


def _speak(request: Request, state: dict[str, Any] | None) -> None:
    """The reader's language (from their card, or as they chose), else the station's choice."""
    language = (state or {}).get("lang") or _session(request).get(IDLE_LANGUAGE)
    if language in LANGUAGES:
        current_language.set(language)
        request.state.language = language


def _reader(request: Request, station: Station) -> tuple[dict[str, Any] | None, bool]:
    """The reader at this station and whether an idle session was just ended (the server's own
    timeout: the page's timer does the same without a tap, when scripts run)."""
    state = _session(request).get(STATE)
    if not isinstance(state, dict) or state.get("station") != station.uuid:
        return None, False
    if now_utc().timestamp() - float(state.get("seen", 0)) > _settings(request).selfcheck_idle_seconds:
        _store(request, **{STATE: None, IDLE_LANGUAGE: None})
        return None, True
    return state, False


def _touch(request: Request, state: dict[str, Any]) -> None:
    state["seen"] = now_utc().timestamp()
    _store(request, **{STATE: state})


def _result(state: dict[str, Any], **result: Any) -> None:
    state["results"] = (state.get("results") or [])[-(RESULTS_KEPT - 1):] + [result]


def _messages(reasons: list[dict[str, Any]]) -> list[str]:
    """Stored reason codes as messages in the language of this page."""
    return [view["message"] for view in reason_views(
        SimpleNamespace(code=reason["code"], params=reason["params"], overridable=False) for reason in reasons)]


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _not_a_station(request: Request) -> Template:
    return page(request, "selfcheck/not_a_station.html", status_code=403)


def _home(query: str = "") -> Redirect:
    return Redirect(path="/selfcheck" + query, status_code=303)


class SelfCheckPages(Controller):
    """The tablet by the door. No sign-in: the station's token (an HttpOnly cookie) is the key."""

    include_in_schema = False
    opt = {"permission": "credential"}
    path = "/selfcheck"

    async def _station(self, request: Request) -> Station | None:
        return await stations.station_by_token(request.cookies.get(TOKEN_COOKIE))

    async def _visit(self, request: Request, scanning: bool) -> tuple[Station, dict[str, Any]] | Template | Redirect:
        """The station and the reader at it, for an action of the visit; else the answer to give
        instead: not a station (403), or back to the start (no visit, or it ended idle).
        `scanning`: the action lends or renews, which a finished visit may no longer do."""
        station = await self._station(request)
        if station is None:
            return _not_a_station(request)
        state, timed_out = _reader(request, station)
        if state is None or (scanning and state.get("done")):
            return _home("?ended=idle" if timed_out else "")
        return station, state

    def _page(self, request: Request, template: str, station: Station, status_code: int = 200,
              headers: dict[str, str] | None = None, **context: Any) -> Template:
        return page(request, template, status_code=status_code, headers=headers, station=station,
                    idle_seconds=_settings(request).selfcheck_idle_seconds, **context)

    @get("/", name="selfcheck")
    async def show(self, request: Request, ended: Annotated[str | None, QueryParameter()] = None) -> Template:
        station = await self._station(request)
        if station is None:
            return _not_a_station(request)
        state, timed_out = _reader(request, station)
        _speak(request, state)
        if state is None:
            return self._page(request, "selfcheck/start.html", station, ended=ended or ("idle" if timed_out else None),
                              error=None, card_number="")
        results = [{**result, "due": _day(result.get("due")), "messages": _messages(result.get("reasons") or [])}
                   for result in reversed(state.get("results") or [])]
        if state.get("done"):
            lines = [result for result in reversed(results) if result["kind"] in ("lent", "renewed")]
            return self._page(request, "selfcheck/receipt.html", station, state=state, lines=lines,
                              now=now_utc(), time_zone=_settings(request).time_zone)
        standing = await stations.standing(station, state["card"], now_utc())
        return self._page(request, "selfcheck/reader.html", station, state=state, results=results,
                          standing=standing, refusals=reason_views(standing["refusals"]))

    @post("/signin")
    async def sign_in(self, request: Request) -> Template | Redirect:
        station = await self._station(request)
        if station is None:
            return _not_a_station(request)
        form = await request.form()
        card_number = str(form.get("card_number", ""))
        settings = _settings(request)
        _speak(request, None)
        try:
            standing = await stations.sign_in_reader(
                station, card_number, str(form.get("pin", "")), f"selfcheck:{_client_address(request)}", now_utc(),
                settings.signin_failures_per_minute)
        except DomainError as error:
            return self._page(request, "selfcheck/start.html", station, status_code=error.status,
                              headers=refusal_headers(error), ended=None, error=error.message(),
                              card_number=card_number)
        state = {"station": station.uuid, "card": standing["card_number"], "name": standing["name"],
                 "lang": standing["language"] if standing["language"] in LANGUAGES else None,
                 "email": bool(standing["email"]), "visit": uuid_module.uuid4().hex, "results": []}
        _touch(request, state)
        return _home()

    @post("/lend")
    async def lend(self, request: Request) -> Template | Redirect:
        visit = await self._visit(request, scanning=True)
        if not isinstance(visit, tuple):
            return visit
        station, state = visit
        barcode = str((await request.form()).get("barcode", "")).strip()
        if barcode:
            scanned = await stations.lend(station, state["card"], barcode, now_utc(), _settings(request).time_zone)
            _result(state, kind="lent" if scanned.due_on else "refused", barcode=scanned.barcode[:40],
                    title=scanned.title[:80], due=scanned.due_on.isoformat() if scanned.due_on else None,
                    reasons=list(scanned.reasons))
        _touch(request, state)
        return _home()

    @post("/renew")
    async def renew(self, request: Request) -> Template | Redirect:
        visit = await self._visit(request, scanning=True)
        if not isinstance(visit, tuple):
            return visit
        station, state = visit
        form = await request.form()
        barcode = None if form.get("all") else str(form.get("barcode", "")).strip()
        try:
            outcomes = await stations.renew(station, state["card"], barcode, now_utc(), _settings(request).time_zone)
        except DomainError as error:
            _result(state, kind="not_renewed", barcode=(barcode or "").upper()[:40], title="", due=None,
                    reasons=stations.refusal_codes(error))
            outcomes = []
        for outcome in outcomes:
            _result(state, kind="renewed" if outcome.renewed else "not_renewed", barcode=outcome.barcode,
                    title=outcome.title[:80], due=outcome.due_on.isoformat(),
                    reasons=stations.refusal_codes(CirculationRefused(outcome.reasons)) if outcome.reasons else [])
        _touch(request, state)
        return _home()

    @post("/finish")
    async def finish(self, request: Request) -> Template | Redirect:
        """The receipt: printed, or sent as a notice; the reader may no longer scan."""
        visit = await self._visit(request, scanning=False)
        if not isinstance(visit, tuple):
            return visit
        _, state = visit
        state["done"] = True
        _touch(request, state)
        return _home()

    @post("/receipt/email")
    async def email_receipt(self, request: Request) -> Template | Redirect:
        visit = await self._visit(request, scanning=False)
        if not isinstance(visit, tuple):
            return visit
        station, state = visit
        lines = [{"title": r["title"], "barcode": r["barcode"], "due": r["due"]}
                 for r in state.get("results") or [] if r["kind"] in ("lent", "renewed")]
        await stations.send_receipt(station, state["card"], state["visit"], lines, now_utc(),
                                    _settings(request).time_zone)
        state["emailed"] = True
        _touch(request, state)
        return _home()

    @post("/end")
    async def end(self, request: Request) -> Template | Redirect:
        """The reader is done (or the page's timer ran out): the next reader starts afresh."""
        station = await self._station(request)
        if station is None:
            return _not_a_station(request)
        idle = (await request.form()).get("reason") == "idle"
        _store(request, **{STATE: None, IDLE_LANGUAGE: None})
        return _home("?ended=idle" if idle else "?ended=done")

    @post("/language")
    async def language(self, request: Request) -> Template | Redirect:
        station = await self._station(request)
        if station is None:
            return _not_a_station(request)
        language = (await request.form()).get("lang")
        if language not in LANGUAGES:
            return _home()
        state, _ = _reader(request, station)
        if state is not None:
            state["lang"] = language
            _touch(request, state)
        else:
            _store(request, **{IDLE_LANGUAGE: language})
        return _home()


class SelfCheckStationPages(Controller):
    """Staff set a tablet up as a station of their branch (from the tablet), and revoke stations."""

    include_in_schema = False
    opt = {"permission": "selfcheck.help"}
    path = "/staff/selfcheck"

    async def _form(self, request: Request, error: DomainError | None = None, done: str | None = None,
                    name: str = "") -> Template:
        principal: Principal = principal_of(request)
        return page(request, "selfcheck/stations.html", status_code=error.status if error else 200,
                    stations=await stations.stations_for(principal),
                    branches=await branches.branch_choices(principal), error=error.message() if error else None,
                    done=done, name=name)

    @get("/", name="selfcheck_stations")
    async def list_stations(self, request: Request, done: Annotated[str | None, QueryParameter()] = None) -> Template:
        return await self._form(request, done=done if done in ("revoked",) else None)

    @post("/issue", opt={"permission": "selfcheck.manage"})
    async def issue(self, request: Request) -> Template | Redirect:
        """This device becomes a station: it gets the token, and the member of staff is signed out
        on it, so the tablet by the door holds no staff session."""
        form = await request.form()
        name = str(form.get("name", ""))
        try:
            _, token = await stations.issue_station(principal_of(request), str(form.get("branch", "")), name)
        except DomainError as error:
            return await self._form(request, error=error, name=name)
        session = _session(request)
        request.set_session({key: session[key] for key in ("csrf",) if key in session})
        settings = _settings(request)
        return Redirect(path="/selfcheck", status_code=303, cookies=[Cookie(
            key=TOKEN_COOKIE, value=token, path="/selfcheck", max_age=TOKEN_MAX_AGE, httponly=True,
            samesite="strict", secure=settings.secure_cookies)])

    @post("/{station_uuid:str}/revoke", opt={"permission": "selfcheck.manage"})
    async def revoke(self, request: Request, station_uuid: FromPath[str]) -> Template | Redirect:
        try:
            await stations.revoke_station(principal_of(request), station_uuid, now_utc())
        except DomainError as error:
            return await self._form(request, error=error)
        return Redirect(path="/staff/selfcheck/?done=revoked", status_code=303)


async def staff_home_section(request: Request, principal: Principal) -> tuple[str, dict[str, Any]] | None:
    """Today's activity per self-check machine of the branches this member of staff works for."""
    machines = await activity.today_by_machine(principal, now_utc(), _settings(request).time_zone)
    return "selfcheck/staff_home.html", {"machines": machines}


STAFF_HOME_SECTIONS.append(staff_home_section)

ROUTES = [SelfCheckPages, SelfCheckStationPages]
