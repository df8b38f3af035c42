"""Sign-in and account pages, the staff home, readers for staff, and the accounts API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from library.accounts import service
from library.accounts.principal import Principal
from library.accounts.schemas import Me, SignIn
from library.branches import service as branches
from library.clock import now_utc, today_in
from library.errors import DomainError
from library.web.auth import principal_of, session_for
from library.web.forms import parse_optional_date, safe_next
from library.web.errors import refusal_headers
from library.web.templating import page


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _lifetime(request: Request) -> int:
    return request.app.state.settings.session_minutes * 60


def _limit(request: Request) -> int:
    return request.app.state.settings.signin_failures_per_minute


class SignInPages(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/signin", name="signin")
    async def patron_form(self, request: Request, next_: Annotated[str | None, QueryParameter(name="next")] = None,
                          expired: Annotated[str | None, QueryParameter()] = None) -> Template:
        return page(request, "accounts/signin.html", next=safe_next(next_, "/account"), expired=bool(expired),
                    card_number="", error=None)

    @post("/signin")
    async def patron_submit(self, request: Request) -> Template | Redirect:
        form = await request.form()
        card_number, pin = form.get("card_number", ""), form.get("pin", "")
        target = safe_next(form.get("next"), "/account")
        try:
            principal = await service.sign_in_patron(card_number, pin, _client_address(request), now_utc(), _limit(request))
        except DomainError as error:
            return page(request, "accounts/signin.html", status_code=error.status, headers=refusal_headers(error),
                        next=target, expired=False, card_number=card_number, error=error.message())
        request.set_session(session_for(principal, _lifetime(request)))
        return Redirect(path=target, status_code=303)

    @get("/staff/signin", name="staff_signin")
    async def staff_form(self, request: Request, next_: Annotated[str | None, QueryParameter(name="next")] = None,
                         expired: Annotated[str | None, QueryParameter()] = None) -> Template:
        return page(request, "accounts/staff_signin.html", next=safe_next(next_, "/staff"), expired=bool(expired),
                    username="", error=None)

    @post("/staff/signin")
    async def staff_submit(self, request: Request) -> Template | Redirect:
        form = await request.form()
        username, password = form.get("username", ""), form.get("password", "")
        target = safe_next(form.get("next"), "/staff")
        try:
            principal = await service.sign_in_staff(username, password, _client_address(request), now_utc(), _limit(request))
        except DomainError as error:
            return page(request, "accounts/staff_signin.html", status_code=error.status,
                        headers=refusal_headers(error), next=target, expired=False, username=username,
                        error=error.message())
        request.set_session(session_for(principal, _lifetime(request)))
        return Redirect(path=target, status_code=303)

    @post("/signout", name="signout")
    async def sign_out(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect(path="/", status_code=303)


class AccountPages(Controller):
    include_in_schema = False
    opt = {"permission": "reader"}

    @get("/account/pin", name="account_pin")
    async def pin_form(self, request: Request) -> Template:
        return page(request, "accounts/pin.html", error=None, error_field=None)

    @post("/account/pin")
    async def change_pin(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            await service.change_own_pin(principal_of(request), form.get("current_pin", ""), form.get("new_pin", ""),
                                         form.get("repeated_pin", ""))
        except DomainError as error:
            return page(request, "accounts/pin.html", status_code=error.status, error=error.message(),
                        error_field=error.field)
        return Redirect(path="/account?done=pin", status_code=303)


# Sections that domains above this one add to the staff home (library.selfcheck: today's
# self-check machines), so that the arrows keep pointing down: each is called with the request
# and the member of staff, and answers a template to include with its context, or None.
StaffHomeSection = Callable[[Request, Principal], Awaitable["tuple[str, dict[str, Any]] | None"]]
STAFF_HOME_SECTIONS: list[StaffHomeSection] = []


class StaffPages(Controller):
    include_in_schema = False
    opt = {"permission": "desk.use"}
    path = "/staff"

    @get("/", name="staff_home")
    async def home(self, request: Request) -> Template:
        principal: Principal = principal_of(request)
        today = today_in(request.app.state.settings.time_zone)
        mine = [b for b in await branches.list_branches(today) if principal.works_for(b["id"])]
        sections = [section for add in STAFF_HOME_SECTIONS if (section := await add(request, principal))]
        return page(request, "staff/home.html", branches=mine,
                    sections=[{"template": template, "context": context} for template, context in sections])

    @get("/patrons", opt={"permission": "readers.view"}, name="staff_patrons")
    async def patrons(self, request: Request, q: Annotated[str, QueryParameter()] = "") -> Template:
        today = today_in(request.app.state.settings.time_zone)
        found = await service.find_patrons(principal_of(request), q, today)
        return page(request, "accounts/patrons.html", patrons=found, q=q)

    @get("/patrons/new", opt={"permission": "readers.register"}, name="staff_patron_new")
    async def new_patron_form(self, request: Request) -> Template:
        return await self._patron_form(request, {}, None)

    async def _patron_form(self, request: Request, values: dict[str, Any], error: DomainError | None) -> Template:
        mine = await branches.branch_choices(principal_of(request))
        return page(request, "accounts/patron_new.html", status_code=error.status if error else 200,
                    branches=mine, values=values, error=error.message() if error else None,
                    error_field=error.field if error else None)

    @post("/patrons/new", opt={"permission": "readers.register"})
    async def create_patron(self, request: Request) -> Template | Redirect:
        form = await request.form()
        values = {key: form.get(key, "") for key in (
            "card_number", "name", "birth_date", "category", "home_branch", "phone", "email", "language",
            "guardian_card_number", "pin")}
        principal: Principal = principal_of(request)
        today = today_in(request.app.state.settings.time_zone)
        try:
            await service.create_patron(
                service.NewPatron(
                    card_number=values["card_number"],
                    name=values["name"],
                    pin=values["pin"],
                    home_branch_code=values["home_branch"],
                    category=values["category"] or "adult",
                    birth_date=parse_optional_date(values["birth_date"], "birth_date"),
                    phone=values["phone"],
                    email=values["email"],
                    language=values["language"] or "zh_CN",
                    guardian_card_number=values["guardian_card_number"] or None,
                ),
                actor=principal.audit_name,
                today=today,
                registered_by=principal,
            )
        except DomainError as error:
            values["pin"] = ""
            return await self._patron_form(request, values, error)
        return Redirect(path=f"/staff/patrons?q={values['card_number'].strip()}", status_code=303)


class StaffPatronPages(Controller):
    """A reader's card at the desk: details, family links, PIN reset, blocks."""

    include_in_schema = False
    opt = {"permission": "readers.view"}
    path = "/staff/patrons/{card:str}"

    async def _render(self, request: Request, card: str, error: DomainError | None = None,
                      done: str | None = None) -> Template:
        today = today_in(request.app.state.settings.time_zone)
        patron = await service.patron_card(principal_of(request), card, today)
        return page(request, "accounts/patron.html", status_code=error.status if error else 200, patron=patron,
                    error=error.message() if error else None, error_field=error.field if error else None, done=done)

    @get("/", name="staff_patron")
    async def show(self, request: Request, card: FromPath[str],
                   done: Annotated[str | None, QueryParameter()] = None) -> Template:
        return await self._render(request, card, done=done)

    async def _act(self, request: Request, card: str, action, done: str) -> Template | Redirect:
        try:
            await action(await request.form())
        except DomainError as error:
            return await self._render(request, card, error)
        return Redirect(path=f"/staff/patrons/{service.normalise_card_number(card)}?done={done}", status_code=303)

    @post("/pin", opt={"permission": "readers.edit"})
    async def reset_pin(self, request: Request, card: FromPath[str]) -> Template | Redirect:
        principal = principal_of(request)
        return await self._act(request, card, lambda form: service.reset_pin(principal, card, form.get("pin", "")),
                               "pin")

    @post("/block", opt={"permission": "readers.edit"})
    async def block(self, request: Request, card: FromPath[str]) -> Template | Redirect:
        principal = principal_of(request)
        return await self._act(
            request, card, lambda form: service.set_block(principal, card, form.get("block_reason", "")), "blocked")

    @post("/unblock", opt={"permission": "readers.edit"})
    async def unblock(self, request: Request, card: FromPath[str]) -> Template | Redirect:
        principal = principal_of(request)
        return await self._act(request, card, lambda form: service.set_block(principal, card, None), "unblocked")

    @post("/children", opt={"permission": "readers.edit"})
    async def link_child(self, request: Request, card: FromPath[str]) -> Template | Redirect:
        principal = principal_of(request)
        return await self._act(
            request, card,
            lambda form: service.link_guardian(card, form.get("child_card_number", ""), principal.audit_name),
            "linked")


class AccountsAPI(Controller):
    path = "/api"
    opt = {"permission": "public"}
    tags = ["accounts"]

    @post("/session", summary="Sign in (reader card + PIN, or staff username + password); sets the session cookie")
    async def sign_in(self, request: Request, data: JSONBody[SignIn]) -> Me:
        if data.kind == "patron":
            principal = await service.sign_in_patron(data.login, data.secret, _client_address(request), now_utc(),
                                                     _limit(request))
        else:
            principal = await service.sign_in_staff(data.login, data.secret, _client_address(request), now_utc(),
                                                    _limit(request))
        request.set_session(session_for(principal, _lifetime(request)))
        return await self._me(request, principal)

    @post("/session/end", summary="Sign out", status_code=204)
    async def sign_out(self, request: Request) -> None:
        request.clear_session()

    async def _me(self, request: Request, principal: Principal) -> Me:
        if principal.is_staff:
            return Me(kind="staff", uuid=principal.uuid, name=principal.name, role=principal.role,
                      all_branches=principal.all_branches)
        today = today_in(request.app.state.settings.time_zone)
        return Me.for_household(await service.household(principal, today))

    @get("/me", opt={"permission": "signed_in"}, summary="Who is signed in; a reader also sees the children they act for")
    async def me(self, request: Request) -> Me:
        return await self._me(request, principal_of(request))


ROUTES = [SignInPages, AccountPages, StaffPages, StaffPatronPages, AccountsAPI]
