""""My account" (the reader's loans, holds, history and children on one page), what the library
holds about a reader and their children (shown, downloaded, corrected), and closing an account.

It sits above circulation, activities and accounts: it composes what each of them holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from library.accounts import service as accounts
from library.activities import listings
from library.activities.feeds import patron_feed_url
from library.branches import service as branches
from library.clock import now_utc, today_in
from library.errors import CirculationRefused, DomainError
from library.loans import service as loans
from library.loans.schemas import renewal_views
from library.privacy import service
from library.privacy.retention import RETENTION
from library.web.auth import principal_of
from library.web.downloads import attachment
from library.web.templating import page


def _today(request: Request):
    return today_in(request.app.state.settings.time_zone)


async def account_page(request: Request, status_code: int = 200, **context: Any) -> Template:
    """'My account': the card, the children, and everyone's loans, holds and activities on one page."""
    principal = principal_of(request)
    today = _today(request)
    household = await accounts.household(principal, today)
    circulation = await loans.account(principal, today)
    children_history = {child["id"]: await service.keeps_history(child["id"]) for child in household["children"]}
    return page(request, "accounts/account.html", status_code=status_code, household=household,
                circulation=circulation, done=request.query_params.get("done"),
                branches=await branches.branch_choices(), keeps_history=await service.keeps_history(principal.id),
                children_history=children_history, history=await loans.returned_loans(principal),
                history_days=request.app.state.settings.loan_history_days,
                activities=await listings.family_registrations(principal, now_utc()),
                challenges=await listings.running_challenges(today), challengers=listings.challengers(household),
                feed_url=patron_feed_url(request.app.state.settings.secret_key, principal.uuid), **context)


class ReaderAccount(Controller):
    include_in_schema = False
    opt = {"permission": "reader"}
    path = "/account"

    @get("/", name="account")
    async def account(self, request: Request) -> Template:
        return await account_page(request)

    @post("/loans/renew")
    async def renew(self, request: Request) -> Template:
        form = await request.form()
        try:
            if form.get("loan"):
                outcomes = await loans.renew(principal_of(request), [form.get("loan")], now_utc())
            else:
                outcomes = await loans.renew_all(principal_of(request), now_utc())
        except DomainError as error:
            return await account_page(request, error.status, error=error.message())
        return await account_page(request, renewals=renewal_views(outcomes))

    @post("/history")
    async def keep_history(self, request: Request) -> Template | Redirect:
        """The reader's choice, or a guardian's for a child: keep the books returned, or let them be forgotten."""
        form = await request.form()
        principal = principal_of(request)
        try:
            subject = await service.subject_of(principal, form.get("card_number") or None)
            await service.set_keep_history(principal, subject, bool(form.get("keep")), _today(request))
        except DomainError as error:
            return await account_page(request, error.status, error=error.message())
        return Redirect(path="/account?done=history#history", status_code=303)

    @post("/holds")
    async def place_hold(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            await loans.place_hold(principal_of(request), form.get("record", ""), form.get("pickup_branch", ""),
                                   now_utc(), card_number=form.get("card_number") or None)
        except CirculationRefused as error:
            return await account_page(request, error.status, error=error.message())
        except DomainError as error:
            return await account_page(request, error.status, error=error.message())
        return Redirect(path="/account?done=hold#holds", status_code=303)

    @post("/holds/{uuid:str}/cancel")
    async def cancel_hold(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        try:
            await loans.cancel_hold(principal_of(request), uuid, now_utc())
        except DomainError as error:
            return await account_page(request, error.status, error=error.message())
        return Redirect(path="/account?done=hold_cancelled#holds", status_code=303)

    # -- what the library holds ------------------------------------------------------------------

    async def _data_page(self, request: Request, card: str | None, status_code: int = 200,
                         **context: Any) -> Template:
        principal = principal_of(request)
        subject = await service.subject_of(principal, card)
        household = await accounts.household(principal, _today(request))
        return page(request, "privacy/data.html", status_code=status_code,
                    held=await service.holdings(principal, subject), household=household, card=card or "",
                    manage_refusal=await service.manage_refusal(principal, subject, _today(request)),
                    done=request.query_params.get("done"), **context)

    @get("/data", name="account_data")
    async def data(self, request: Request, card: Annotated[str | None, QueryParameter()] = None) -> Template:
        return await self._data_page(request, card)

    @get("/data.json", name="account_data_json")
    async def data_json(self, request: Request, card: Annotated[str | None, QueryParameter()] = None) -> Response:
        return await self._download(request, card, "json")

    @get("/data.csv", name="account_data_csv")
    async def data_csv(self, request: Request, card: Annotated[str | None, QueryParameter()] = None) -> Response:
        return await self._download(request, card, "csv")

    async def _download(self, request: Request, card: str | None, kind: str) -> Response:
        principal = principal_of(request)
        subject = await service.subject_of(principal, card)
        held = await service.download(principal, subject, _today(request))
        body = service.as_json(held) if kind == "json" else service.as_csv(held)
        name = f"library-data-{held['profile']['card_number']}.{kind}"
        media = "application/json" if kind == "json" else "text/csv; charset=utf-8"
        return Response(body, media_type=media, headers={**attachment(name),
                                                         "Cache-Control": "no-store"})

    @post("/contact")
    async def contact(self, request: Request) -> Template | Redirect:
        form = await request.form()
        principal = principal_of(request)
        card = form.get("card_number") or None
        try:
            subject = await service.subject_of(principal, card)
            await service.update_contact(principal, subject, form.get("email", ""), form.get("phone", ""),
                                         form.get("language", ""), _today(request))
        except DomainError as error:
            return await self._data_page(request, card, error.status, error=error.message(), error_field=error.field,
                                         form=dict(form))
        suffix = f"&card={card}" if card else ""
        return Redirect(path=f"/account/data?done=contact{suffix}", status_code=303)

    @post("/close")
    async def close(self, request: Request) -> Template | Redirect:
        form = await request.form()
        principal = principal_of(request)
        card = form.get("card_number") or None
        try:
            subject = await service.subject_of(principal, card)
            await service.request_closure(principal, subject, form.get("note", ""), now_utc(), _today(request))
        except DomainError as error:
            return await self._data_page(request, card, error.status, error=error.message())
        suffix = f"&card={card}" if card else ""
        return Redirect(path=f"/account/data?done=closure{suffix}", status_code=303)


class StaffClosures(Controller):
    """Closing an account at the desk, once the reader's books are back."""

    include_in_schema = False
    opt = {"permission": "readers.close"}
    path = "/staff/closures"

    async def _page(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        return page(request, "privacy/closures.html", status_code=status_code,
                    requests=await service.closure_requests(principal_of(request)),
                    done=request.query_params.get("done"), **context)

    @get("/", name="staff_closures")
    async def requests(self, request: Request) -> Template:
        return await self._page(request)

    @post("/{card:str}/complete")
    async def complete(self, request: Request, card: FromPath[str]) -> Template | Redirect:
        try:
            await service.complete_closure(principal_of(request), card, now_utc())
        except DomainError as error:
            return await self._page(request, error.status, error=error.message(), card=card)
        return Redirect(path="/staff/closures/?done=closed", status_code=303)


class RetentionPage(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/privacy", name="privacy")
    async def retention(self, request: Request) -> Template:
        settings = request.app.state.settings
        return page(request, "privacy/retention.html", retention=RETENTION, history_days=settings.loan_history_days,
                    activity_days=settings.activity_history_days)


ROUTES = [ReaderAccount, StaffClosures, RetentionPage]
