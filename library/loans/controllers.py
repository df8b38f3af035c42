"""Circulation pages (staff desk, transits, hold shelf, rules) and API; the reader's side is "My account"
(library.privacy.controllers)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from library.branches import service as branches
from library.clock import now_utc, today_in
from library.i18n import current_language
from library.errors import CirculationRefused, DomainError, InvalidInput, NotPermitted
from library.loans import policy, service
from library.loans.schemas import (CheckinIn, CheckinOut, CheckoutIn, CheckoutOut, HoldIn, HoldOut, HoldViewOut,
                                   LoanDetailOut, LoanOut, OverrideOut, ReaderLoansOut, Reason, RenewalOut, RenewIn,
                                   renewal_views)
from library.accounts.permissions import may
from library.accounts.principal import Principal
from library.web.auth import principal_of
from library.web.templating import page


def _today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _checkin_view(result: service.CheckedIn) -> dict[str, Any]:
    return {**result.__dict__}


async def _desk_branch(request: Request, code: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The branch a desk works for: the one asked for, or the first the staff member works for."""
    mine = await branches.branch_choices(principal_of(request))
    codes = [b["code"] for b in mine]
    settings_code = request.app.state.settings.branch_code
    chosen = (code or "").strip().upper() or (settings_code if settings_code in codes else (codes[0] if codes else ""))
    return chosen, mine


# --- the staff desk ------------------------------------------------------------------------


def _loans_shown_to(principal: Principal, patron: dict[str, Any], just_lent: list[str]) -> dict[str, Any]:
    """Without `readers.loan_history` (a volunteer at the desk) the reader's loans and holds stay
    hidden: only the books lent in this visit are shown, for the slip."""
    if may(principal, "readers.loan_history"):
        return patron
    return {**patron, "loans": [loan for loan in patron["loans"] if loan["barcode"] in just_lent], "holds": []}


def _may_override(principal: Principal, comment: str | None) -> None:
    """An override comment lends (or renews) despite a refusal: `loans.override`, not a volunteer's."""
    if comment and not may(principal, "loans.override"):
        raise NotPermitted("not_for_your_role", field="override_comment")


class CirculationDesk(Controller):
    include_in_schema = False
    opt = {"permission": "desk.use"}
    path = "/staff/circulation"

    async def _desk(self, request: Request, branch: str | None, card: str | None, status_code: int = 200,
                    **context: Any) -> Template:
        code, mine = await _desk_branch(request, branch)
        patron, patron_error = None, None
        if card:
            try:
                patron = await service.patron_at_desk(principal_of(request), card, _today(request))
            except DomainError as error:
                patron_error, status_code = error.message(), error.status
        context.setdefault("checked_out", [])
        if patron is not None:
            patron = _loans_shown_to(principal_of(request), patron, context["checked_out"])
        return page(request, "loans/desk.html", status_code=status_code, branch=code, branches=mine, card=card or "",
                    patron=patron, patron_error=patron_error, **context)

    @get("/", name="circulation_desk")
    async def desk(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None,
                   card: Annotated[str | None, QueryParameter()] = None) -> Template:
        return await self._desk(request, branch, card)

    @post("/checkout", opt={"permission": "loans.lend"})
    async def checkout(self, request: Request) -> Template:
        form = await request.form()
        branch, card, barcode = form.get("branch", ""), form.get("card", ""), form.get("barcode", "")
        comment = form.get("override_comment") or None
        earlier = [b for b in form.getall("done", []) if b]
        try:
            _may_override(principal_of(request), comment)
            result = await service.checkout(principal_of(request), branch, card, barcode, now_utc(), comment)
        except CirculationRefused as error:
            return await self._desk(request, branch, card, error.status, refused=error.reasons(),
                                    refused_barcode=barcode, checked_out=earlier)
        except DomainError as error:
            return await self._desk(request, branch, card, error.status, error=error.message(),
                                    checked_out=earlier)
        return await self._desk(request, branch, card, checked_out=[*earlier, result.barcode],
                                just_lent=result)

    @post("/checkin", opt={"permission": "loans.return"})
    async def checkin(self, request: Request) -> Template:
        form = await request.form()
        branch, barcode = form.get("branch", ""), form.get("barcode", "")
        try:
            result = await service.checkin(principal_of(request), branch, barcode, now_utc())
        except DomainError as error:
            return await self._desk(request, branch, None, error.status, checkin_error=error.message())
        return await self._desk(request, branch, None, checked_in=_checkin_view(result))

    @post("/renew", opt={"permission": "loans.renew"})
    async def renew(self, request: Request) -> Template:
        form = await request.form()
        branch, card = form.get("branch", ""), form.get("card", "")
        comment = form.get("override_comment") or None
        try:
            _may_override(principal_of(request), comment)
            if form.get("loan"):
                outcomes = await service.renew(principal_of(request), [form.get("loan")], now_utc(), comment)
            else:
                outcomes = await service.renew_all(principal_of(request), now_utc(), card_number=card)
        except DomainError as error:
            return await self._desk(request, branch, card, error.status, error=error.message())
        return await self._desk(request, branch, card, renewals=renewal_views(outcomes))

    @get("/slip", opt={"permission": "loans.lend"}, name="circulation_slip")
    async def slip(self, request: Request, card: Annotated[str, QueryParameter()],
                   branch: Annotated[str | None, QueryParameter()] = None,
                   barcodes: Annotated[str, QueryParameter()] = "") -> Template:
        """A printable slip: the reader's loans, the ones just lent first, with their due dates."""
        code, mine = await _desk_branch(request, branch)
        patron = await service.patron_at_desk(principal_of(request), card, _today(request))
        just = [b for b in barcodes.split(",") if b]
        patron = _loans_shown_to(principal_of(request), patron, just)
        loans = sorted(patron["loans"], key=lambda loan: (loan["barcode"] not in just, loan["due_on"]))
        names = {b["code"]: b for b in mine}
        return page(request, "loans/slip.html", patron=patron, loans=loans, just=just, branch=names.get(code),
                    printed_at=now_utc())

    @get("/loans/{uuid:str}", name="circulation_loan")
    async def loan(self, request: Request, uuid: FromPath[str]) -> Template:
        return page(request, "loans/loan.html", loan=await service.loan_detail(principal_of(request), uuid))

    @get("/transits", opt={"permission": "transits.receive"}, name="circulation_transits")
    async def transits(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None) -> Template:
        code, mine = await _desk_branch(request, branch)
        lists = await service.transits(principal_of(request), code)
        return page(request, "loans/transits.html", branch=code, branches=mine, **lists)

    @get("/holds", name="circulation_holds")
    async def holds(self, request: Request, branch: Annotated[str | None, QueryParameter()] = None) -> Template:
        code, mine = await _desk_branch(request, branch)
        lists = await service.hold_shelf(principal_of(request), code)
        return page(request, "loans/hold_shelf.html", branch=code, branches=mine, **lists)

    @get("/rules", name="circulation_rules")
    async def rules(self, request: Request) -> Template:
        return await self._rules_page(request)

    async def _rules_page(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        return page(request, "loans/rules.html", status_code=status_code, rules=await policy.list_rules(),
                    branches=await branches.branch_choices(), limits=policy.LIMITS, **context)

    @post("/rules", opt={"permission": "rules.edit"})
    async def save_rule(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            data = _rule_input(form)
            await policy.save_rule(principal_of(request), data)
        except DomainError as error:
            return await self._rules_page(request, error.status, error=error.message(), error_field=error.field,
                                          values=dict(form))
        return Redirect(path="/staff/circulation/rules?saved=1", status_code=303)

    @post("/rules/{uuid:str}/remove", opt={"permission": "rules.edit"})
    async def remove_rule(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        try:
            await policy.remove_rule(principal_of(request), uuid)
        except DomainError as error:
            return await self._rules_page(request, error.status, error=error.message())
        return Redirect(path="/staff/circulation/rules", status_code=303)


def _rule_input(form: Any) -> policy.RuleInput:
    values: dict[str, Any] = {}
    for name in policy.LIMITS:
        raw = (form.get(name) or "").strip()
        # One optional minus and decimal digits: lstrip("-").isdigit() let "--5" and "²" through to int().
        if not re.fullmatch(r"-?\d+", raw):
            low, high = policy.LIMITS[name]
            raise InvalidInput("number_out_of_range", field=name, low=low, high=high)
        values[name] = int(raw)
    return policy.RuleInput(
        branch_code=form.get("branch_code") or None, patron_category=form.get("patron_category") or None,
        item_type=form.get("item_type") or None, name=form.get("name", ""), loanable=bool(form.get("loanable")),
        renew_from=form.get("renew_from", "today"), holds_allowed=bool(form.get("holds_allowed")), **values)


# --- API ---------------------------------------------------------------------------------------


def _renewal_out(outcomes: list[service.RenewalOutcome]) -> list[RenewalOut]:
    return [RenewalOut(loan=view["loan"], barcode=view["barcode"], title=view["title"], renewed=view["renewed"],
                       due_on=view["due_on"], reasons=[Reason(**reason) for reason in view["reasons"]])
            for view in renewal_views(outcomes)]


def _reader_out(reader: dict[str, Any]) -> ReaderLoansOut:
    return ReaderLoansOut(
        card_number=reader["card_number"], name=reader["name"],
        loans=[LoanOut(loan=l["uuid"], barcode=l["barcode"], title=l["title"], record=l["record_uuid"],
                       due_on=l["due_on"], overdue_days=l["overdue_days"], renewals=l["renewals"],
                       branch=l["branch_code"]) for l in reader["loans"]],
        holds=[HoldViewOut(hold=h["uuid"], title=h["title"], record=h["record_uuid"], status=h["status"],
                           pickup_branch=h["pickup_branch"], position=h["position"], expires_on=h["expires_on"])
               for h in reader["holds"]])


class CirculationAPI(Controller):
    path = "/api"
    tags = ["circulation"]

    @post("/loans/checkout", opt={"permission": "loans.lend"}, status_code=201,
          summary="Lend a copy (card number + barcode at a branch); 409 lists every reason when refused")
    async def checkout(self, request: Request, data: JSONBody[CheckoutIn]) -> CheckoutOut:
        _may_override(principal_of(request), data.override_comment)
        result = await service.checkout(principal_of(request), data.branch, data.card_number, data.barcode,
                                        now_utc(), data.override_comment)
        return CheckoutOut(loan=result.loan_uuid, barcode=result.barcode, title=result.title, due_on=result.due_on,
                           rule=result.rule_scope, overridden=list(result.overridden))

    @post("/loans/checkin", opt={"permission": "loans.return"}, status_code=200,
          summary="Return a copy at any branch (or receive a transit); says where the copy goes next")
    async def checkin(self, request: Request, data: JSONBody[CheckinIn]) -> CheckinOut:
        result = await service.checkin(principal_of(request), data.branch, data.barcode, now_utc())
        language = current_language.get()
        return CheckinOut(barcode=result.barcode, title=result.title, was_on_loan=result.was_on_loan,
                          days_overdue=result.days_overdue, fine_cents=result.fine_cents, route=result.route,
                          to_branch=result.to_branch_code,
                          to_branch_name=result.to_branch_name_en if language == "en" else result.to_branch_name_zh,
                          received_transit=result.received_transit,
                          hold_patron_card=result.hold_patron_card or None)

    @post("/loans/renew", opt={"permission": "loans.renew", "reader": True}, status_code=200,
          summary="Renew loans by id, or all (own and linked children's); each outcome with every reason")
    async def renew(self, request: Request, data: JSONBody[RenewIn]) -> list[RenewalOut]:
        principal = principal_of(request)
        if data.all:
            outcomes = await service.renew_all(principal, now_utc(), card_number=data.card_number)
        else:
            _may_override(principal, data.override_comment)
            outcomes = await service.renew(principal, data.loans, now_utc(), data.override_comment)
        return _renewal_out(outcomes)

    @get("/loans", opt={"permission": "readers.loan_history", "reader": True}, 
         summary="Open loans and holds: a reader's own and their children's; staff give card_number")
    async def loans(self, request: Request,
                    card_number: Annotated[str | None, QueryParameter()] = None) -> list[ReaderLoansOut]:
        principal = principal_of(request)
        if principal.is_staff:
            if not card_number:
                raise InvalidInput("required", field="card_number")
            desk = await service.patron_at_desk(principal, card_number, _today(request))
            return [_reader_out(desk)]
        return [_reader_out(reader) for reader in (await service.account(principal, _today(request)))["readers"]]

    @get("/loans/{uuid:str}", opt={"permission": "readers.loan_history"}, summary="One loan: which rule applied and why, overrides")
    async def loan(self, request: Request, uuid: FromPath[str]) -> LoanDetailOut:
        view = await service.loan_detail(principal_of(request), uuid)
        return LoanDetailOut(
            loan=view["uuid"], barcode=view["barcode"], title=view["title"], branch=view["branch_code"],
            due_on=view["due_on"], renewals=view["renewals"], item_type=view["item_type"],
            patron_category=view["patron_category"], rule=view["rule_scope"],
            rules_considered=view["rules_considered"],
            overrides=[OverrideOut(code=o.get("code", ""), comment=o.get("comment"), by=o.get("by"))
                       for o in view["overrides"]],
            returned_at=view["returned_at"], fine_cents=view["fine_cents"])

    @post("/holds", opt={"permission": "signed_in"}, status_code=201,
          summary="Place a hold on a record (any copy) for pickup at a branch")
    async def place_hold(self, request: Request, data: JSONBody[HoldIn]) -> HoldOut:
        hold = await service.place_hold(principal_of(request), data.record, data.pickup_branch, now_utc(),
                                        card_number=data.card_number)
        return HoldOut(hold=hold["uuid"], title=hold["title"], pickup_branch=hold["pickup_branch"],
                       position=hold["position"])

    @delete("/holds/{uuid:str}", opt={"permission": "signed_in"}, status_code=204, summary="Cancel a hold")
    async def cancel_hold(self, request: Request, uuid: FromPath[str]) -> None:
        await service.cancel_hold(principal_of(request), uuid, now_utc())


def desk_link(branch: str, card: str) -> str:
    return "/staff/circulation/?" + urlencode({"branch": branch, "card": card})


ROUTES = [CirculationDesk, CirculationAPI]
