"""Sync over HTTP: the central node's feed and upload endpoints, and the staff page on every node."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from library.branches import service as branches
from library.clock import now_utc
from library.errors import DomainError, InvalidInput, NotPermitted
from library.sync import client, feed, service, vault
from library.sync.apply import apply_upload, parse_upload, parse_upload_clock
from library.web.auth import principal_of
from library.web.templating import page

UPLOAD_MAX_BYTES = 16 * 1024 * 1024  # a package of 250 entities is far below; a day offline is several


def _check_branch(branch: dict[str, Any], asked: Any) -> None:
    if asked is not None and not isinstance(asked, str):
        raise InvalidInput("sync_payload", detail="branch must be a branch code")
    if asked and asked.strip().upper() != branch["code"]:
        raise NotPermitted("sync_other_branch", code=branch["code"])


async def _node(request: Request) -> dict[str, Any]:
    """The branch a request speaks for, within its request budget (429 with Retry-After beyond)."""
    settings = request.app.state.settings
    service.require_central(settings)
    node = await service.branch_of_credential(request.headers.get("authorization"))
    budget = getattr(request.app.state, "sync_budget", None)
    if budget is None:
        budget = request.app.state.sync_budget = service.RequestBudget(settings.sync_requests_per_minute)
    budget.take(node["code"], now_utc())
    return node


class SyncAPI(Controller):
    """Node to node: a branch's credential in `Authorization: Bearer CODE.secret`."""

    path = "/api/sync"
    opt = {"permission": "credential"}
    tags = ["sync"]

    @get("/changes", summary="The central node's change feed for the credential's branch, one page after a cursor")
    async def changes(self, request: Request, cursor: Annotated[str, QueryParameter()] = "",
                      limit: Annotated[int, QueryParameter(ge=1, le=feed.PAGE_LIMIT)] = 500,
                      branch: Annotated[str | None, QueryParameter()] = None) -> dict[str, Any]:
        node = await _node(request)
        _check_branch(node, branch)
        return await feed.changes(node, cursor, limit, now=now_utc(),
                                  verifier_days=request.app.state.settings.sync_verifier_days)

    @post("/uploads", status_code=200, request_max_body_size=UPLOAD_MAX_BYTES,
          summary="Apply a branch's upload transaction exactly once (idempotent on its uuid)")
    async def upload(self, request: Request) -> dict[str, Any]:
        settings = request.app.state.settings
        node = await _node(request)
        try:
            body = await request.json()
        except HTTPException:
            raise  # over the size limit: a 413, not a malformed payload
        except Exception:  # noqa: BLE001 - any undecodable body is the sender's error
            raise InvalidInput("sync_payload", detail="the body is not JSON") from None
        if isinstance(body, dict):
            _check_branch(node, body.get("branch"))
        upload, changes = parse_upload(body)
        return await apply_upload(node, upload, changes, parse_upload_clock(body), now_utc(),
                                  settings.sync_clock_skew_seconds, settings.sync_verifier_days)

    @post("/vault", status_code=200, request_max_body_size=UPLOAD_MAX_BYTES,
          summary="Keep the credential's branch's own rows (activities, registrations, staff) in its vault")
    async def keep_in_vault(self, request: Request) -> dict[str, Any]:
        node = await _node(request)
        try:
            body = await request.json()
        except HTTPException:
            raise
        except Exception:  # noqa: BLE001 - any undecodable body is the sender's error
            raise InvalidInput("sync_payload", detail="the body is not JSON") from None
        if isinstance(body, dict):
            _check_branch(node, body.get("branch"))
        put, gone = vault.parse_vault_upload(body)
        return await vault.keep(node, put, gone, now_utc())

    @get("/vault", summary="The credential's branch's vault, one page after a position (to rebuild a dead box)")
    async def read_vault(self, request: Request, after: Annotated[int, QueryParameter(ge=0)] = 0,
                         limit: Annotated[int, QueryParameter(ge=1, le=2000)] = 500,
                         branch: Annotated[str | None, QueryParameter()] = None) -> dict[str, Any]:
        node = await _node(request)
        _check_branch(node, branch)
        return await vault.page(node, after, limit)


class SyncDesk(Controller):
    include_in_schema = False
    opt = {"permission": "sync.run"}
    path = "/staff/sync"

    async def _page(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        settings = request.app.state.settings
        mine = await branches.branch_choices(principal_of(request))
        codes = [b["code"] for b in mine]
        code = settings.branch_code if settings.branch_code in codes else (codes[0] if codes else "")
        return page(request, "sync/status.html", status_code=status_code, state=await service.status(settings),
                    conflicts=await service.conflicts("open"), transfers=await service.transfers(code) if code else None,
                    branch=code, branches=mine, **context)

    @get("/", name="sync_status")
    async def status(self, request: Request) -> Template:
        return await self._page(request)

    @post("/round")
    async def round(self, request: Request) -> Template:
        try:
            report = await client.sync_round_once(request.app.state.settings)
        except client.SyncFailed as error:
            return await self._page(request, 502, error=str(error))
        except DomainError as error:
            return await self._page(request, error.status, error=error.message())
        return await self._page(request, report=report)

    @post("/conflicts/{uuid:str}/resolve")
    async def resolve(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        try:
            await service.resolve_conflict(principal_of(request), uuid, form.get("resolution", ""))
        except DomainError as error:
            return await self._page(request, error.status, error=error.message())
        return Redirect(path="/staff/sync/", status_code=303)

    @post("/transfers/send")
    async def send(self, request: Request) -> Template:
        form = await request.form()
        try:
            sent = await service.send_transfers(principal_of(request), form.get("branch", ""),
                                                [u for u in form.getall("transfer", []) if u], now_utc())
        except DomainError as error:
            return await self._page(request, error.status, error=error.message())
        return await self._page(request, sent=sent)

    @post("/transfers", opt={"permission": "sync.manage"})
    async def request_transfers(self, request: Request) -> Template:
        form = await request.form()
        barcodes = (form.get("barcodes", "") or "").replace(",", " ").split()
        try:
            made = await service.request_transfers(principal_of(request), barcodes, form.get("to_branch", ""),
                                                   form.get("batch", ""), now_utc())
        except DomainError as error:
            return await self._page(request, error.status, error=error.message(), form=dict(form))
        return await self._page(request, requested=made)

    @post("/credentials", opt={"permission": "sync.manage"})
    async def credential(self, request: Request) -> Template:
        form = await request.form()
        try:
            service.require_central(request.app.state.settings)
            secret = await service.issue_credential((form.get("branch", "") or "").strip().upper(),
                                                    principal_of(request).audit_name)
        except DomainError as error:
            return await self._page(request, error.status, error=error.message())
        return await self._page(request, credential=secret)


ROUTES = [SyncAPI, SyncDesk]
