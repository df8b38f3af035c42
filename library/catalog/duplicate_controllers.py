"""Possible duplicates: the staff pages (the list, one pair side by side) and the JSON API.

Every member of staff may look; merging and keeping apart are the network's cataloguers'
decision (library.catalog.duplicates.may_decide), refused with 403 to anyone else.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from library.catalog import duplicates
from library.clock import now_utc
from library.errors import DomainError, NotFound
from library.web.auth import principal_of
from library.web.templating import page


def _records_are_central(request: Request) -> bool:
    """A branch node that syncs: the central library's cataloguers decide its records."""
    settings = request.app.state.settings
    return settings.node_role == "branch" and bool(settings.central_url)


# --- API types ----------------------------------------------------------------------------------


class Contributor(msgspec.Struct):
    name: str
    role: str


class RecordSide(msgspec.Struct):
    uuid: str
    title: str
    subtitle: str
    isbn13: str | None
    other_isbns: list[str]
    contributors: list[Contributor]
    publisher: str
    publication_year: int | None
    control_number: str | None
    marc_source: str
    copies: int
    holds: int


class PairOut(msgspec.Struct):
    id: int
    reason: str
    status: str
    found_by: str
    found_at: dt.datetime
    decided_by: str
    decided_at: dt.datetime | None
    left: RecordSide
    right: RecordSide
    differs: list[str] = []


class PairsOut(msgspec.Struct):
    total: int
    page: int
    page_size: int
    pairs: list[PairOut]


class MergeIn(msgspec.Struct, forbid_unknown_fields=True):
    keep: str  # the uuid of the record that stays


class CancelledHold(msgspec.Struct):
    hold: str
    card_number: str


class MergedOut(msgspec.Struct):
    kept: str
    removed: str
    copies: int
    holds: int
    holds_cancelled: list[CancelledHold]
    references: dict[str, int]


def _pair_out(view: dict[str, Any]) -> PairOut:
    return msgspec.convert(view, PairOut, strict=False)


def _pair_id(text: str) -> int:
    """A pair's number; anything else is simply no pair (a 404, never a 500)."""
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500 the fuzzer found).
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound("duplicate_not_found")
    return int(text)


# --- pages --------------------------------------------------------------------------------------


class DuplicatePages(Controller):
    include_in_schema = False
    opt = {"permission": "records.edit"}
    path = "/staff/catalog/duplicates"

    @get("/", name="staff_duplicates")
    async def list_page(self, request: Request,
                        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1,
                        merged: Annotated[str | None, QueryParameter()] = None,
                        kept_apart: Annotated[bool, QueryParameter()] = False) -> Template:
        return await self._list(request, page_number, merged=merged, kept_apart=kept_apart)

    async def _list(self, request: Request, page_number: int = 1, status_code: int = 200, **context: Any) -> Template:
        return page(request, "catalog/duplicates.html", status_code=status_code,
                    listing=await duplicates.open_pairs(page_number),
                    may_decide=duplicates.may_decide(principal_of(request)), **context)

    @get("/{pair:str}", name="staff_duplicate")
    async def pair_page(self, request: Request, pair: FromPath[str]) -> Template:
        return await self._pair(request, _pair_id(pair))

    async def _pair(self, request: Request, pair_id: int, error: DomainError | None = None) -> Template:
        return page(request, "catalog/duplicate.html", status_code=error.status if error else 200,
                    pair=await duplicates.pair_detail(pair_id), error=error.message() if error else None,
                    may_decide=duplicates.may_decide(principal_of(request)),
                    records_are_central=_records_are_central(request))

    async def _refused(self, request: Request, pair_id: int, error: DomainError) -> Template:
        """The pair again with the refusal; the list, if the pair itself is gone."""
        try:
            return await self._pair(request, pair_id, error)
        except NotFound:
            return await self._list(request, status_code=error.status, error=error.message())

    @post("/{pair:str}/merge")
    async def merge(self, request: Request, pair: FromPath[str]) -> Template | Redirect:
        pair_id = _pair_id(pair)
        form = await request.form()
        try:
            merged = await duplicates.merge(pair_id, form.get("keep", ""), principal_of(request), now_utc(),
                                            records_are_central=_records_are_central(request))
        except DomainError as error:
            return await self._refused(request, pair_id, error)
        return Redirect(path=f"/staff/catalog/duplicates/?merged={merged.kept}", status_code=303)

    @post("/{pair:str}/keep-apart")
    async def keep_apart(self, request: Request, pair: FromPath[str]) -> Template | Redirect:
        pair_id = _pair_id(pair)
        try:
            await duplicates.keep_apart(pair_id, principal_of(request), now_utc())
        except DomainError as error:
            return await self._refused(request, pair_id, error)
        return Redirect(path="/staff/catalog/duplicates/?kept_apart=1", status_code=303)


# --- API ----------------------------------------------------------------------------------------


class DuplicateAPI(Controller):
    path = "/api/catalog/duplicates"
    tags = ["catalogue"]
    opt = {"permission": "records.edit"}

    @get("/", summary="Open possible duplicates: pairs of records that might be one book, oldest first")
    async def list_pairs(self, page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1,
                         page_size: Annotated[int, QueryParameter(ge=1, le=200)] = duplicates.PAGE_SIZE) -> PairsOut:
        listing = await duplicates.open_pairs(page_number, page_size)
        return PairsOut(total=listing["total"], page=listing["page"], page_size=listing["page_size"],
                        pairs=[_pair_out(pair) for pair in listing["pairs"]])

    @get("/{pair:str}", summary="One pair of possible duplicates, with the fields in which the records differ")
    async def get_pair(self, pair: FromPath[str]) -> PairOut:
        return _pair_out(await duplicates.pair_detail(_pair_id(pair)))

    @post("/{pair:str}/merge", status_code=200,
          summary="Merge the pair into the record `keep`: its copies, holds and reading logs move, the other goes")
    async def merge(self, request: Request, pair: FromPath[str], data: JSONBody[MergeIn]) -> MergedOut:
        merged = await duplicates.merge(_pair_id(pair), data.keep, principal_of(request), now_utc(),
                                        records_are_central=_records_are_central(request))
        return msgspec.convert(merged.__dict__, MergedOut, strict=False)

    @post("/{pair:str}/keep-apart", status_code=204, summary="The two records are different books: close the pair")
    async def keep_apart(self, request: Request, pair: FromPath[str]) -> None:
        await duplicates.keep_apart(_pair_id(pair), principal_of(request), now_utc())


ROUTES = [DuplicatePages, DuplicateAPI]
