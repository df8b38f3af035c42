"""Catalogue pages (public search and records; staff intake, records, copies, labels, exchange) and API."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Stream, Template
from markupsafe import Markup

from library.branches import service as branches
from library.catalog import batches, export, forms, metadata, service
from library.catalog.marc import Note
from library.catalog.metadata import image_extension, store_cover
from library.catalog.schemas import (CopiesIn, ImportReportOut, IntakeOut, ItemDetailOut, RecordIn, RecordOut,
                                     SearchOut, WithdrawIn)
from library.catalog.search import SearchFilters, parse_range
from library.catalog.sources import intake as copy_intake
from library.catalog.sources import targets
from library.catalog.sources.base import SourceFailed, SourceQuery
from library.clock import now_utc, today_in
from library.errors import DomainError, InvalidInput, InvalidRecord
from library.i18n import gettext
from library.web.auth import principal_of
from library.web.downloads import attachment
from library.web.templating import page

COVER_LIMIT = 2 * 1024 * 1024
IMPORT_LIMIT = 100 * 1024 * 1024
# The one-step import page lists this many refused records; its batch page lists them all.
REFUSED_SHOWN = 50
# The API's age and year filters: "5" or "3-5" (ages 0 to 18); "2008", "2000-2009", "-1959", "2020-".
_AGE_PATTERN = r"^\s*(1[0-8]|[0-9])?\s*(-\s*(1[0-8]|[0-9])?)?\s*$"
_YEAR_PATTERN = r"^\s*[0-9]{0,4}\s*(-\s*[0-9]{0,4})?\s*$"


def _today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _filters(age: str | None, format_: str | None, language: str | None, branch: str | None,
             available: bool, year: str | None = None) -> SearchFilters:
    """The search's filters from the query string: an age ("5") or an age band ("3-5"), a
    publication year ("2008") or range ("2000-2009", "-1959", "2020-"); an empty or
    nonsense one is "any" (a form sends every field)."""
    return SearchFilters(ages=parse_range(age, 0, 18), format=format_ or None, language=language or None,
                         branch=branch or None, available=available, years=parse_range(year, 1, 9999))


def _search_links(request: Request) -> Callable[..., str]:
    """`link(name=value, ...)`: this search's query string with those parameters set (None takes
    one off) and the page number dropped, for the facets' and the suggestion's links."""
    current = [(k, v) for k, v in parse_qsl(request.url.query) if k != "page"]  # in the order written

    def link(**changes: str | None) -> str:
        kept = [(k, v) for k, v in current if k not in changes and v != ""]
        kept += [(k, v) for k, v in changes.items() if v is not None]
        return "?" + urlencode(kept)

    return link


# python-barcode's SVG writer colours the bars with style="fill:…"; the Content-Security-Policy
# refuses inline styles and allows presentation attributes: fill="…" draws the same.
_SVG_STYLE_FILL = re.compile(r'\sstyle="fill:\s*([#\w]+)\s*;?\s*"')


@lru_cache(maxsize=2048)
def barcode_svg(value: str) -> Markup:
    """A Code 128 barcode as inline SVG (no image files, prints sharp, no inline style)."""
    import barcode
    from barcode.writer import SVGWriter

    svg = barcode.get("code128", value, writer=SVGWriter()).render(
        {"module_height": 9, "module_width": 0.25, "font_size": 0, "quiet_zone": 1.5, "write_text": False})
    text = svg.decode()
    return Markup(_SVG_STYLE_FILL.sub(r' fill="\1"', text[text.index("<svg"):]))


async def _my_branches(request: Request) -> list[dict[str, Any]]:
    principal = principal_of(request)
    return await branches.branch_choices(principal)


# --- public ---------------------------------------------------------------------------------


class CataloguePages(Controller):
    include_in_schema = False
    opt = {"permission": "public"}

    @get("/catalog", name="catalog_search")
    async def search(
        self, request: Request,
        q: Annotated[str, QueryParameter()] = "",
        age: Annotated[str | None, QueryParameter()] = None,
        format_: Annotated[str | None, QueryParameter(name="format")] = None,
        language: Annotated[str | None, QueryParameter()] = None,
        branch: Annotated[str | None, QueryParameter()] = None,
        available: Annotated[bool, QueryParameter()] = False,
        year: Annotated[str | None, QueryParameter()] = None,
        sort: Annotated[str, QueryParameter()] = "relevance",
        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=10000)] = 1,
    ) -> Template:
        filters = _filters(age, format_, language, branch, available, year)
        result = await service.search(q, filters, sort, page_number, 20, facets=True) if (
            q.strip() or filters.any) else None
        link = _search_links(request)
        return page(request, "catalog/search.html", result=result, q=q, filters=filters, sort=sort,
                    base_query=link()[1:], link=link, branches=await branches.branch_choices())

    @get("/catalog/records/{uuid:str}", name="catalog_record")
    async def record(self, request: Request, uuid: FromPath[str]) -> Template:
        principal = principal_of(request)
        children = []
        if principal is not None and principal.is_patron and principal.children_ids:
            from library.accounts.service import household

            children = (await household(principal, _today(request)))["children"]
        return page(request, "catalog/record.html", record=await service.record_detail(uuid),
                    branches=await branches.branch_choices(), children=children)


# --- copy cataloguing ------------------------------------------------------------------------


def _copy_query(isbn: str, title: str, author: str, publisher: str) -> SourceQuery:
    """The question from the query string: an ISBN read as one (a bad check digit is refused as
    on the intake form), else the words given."""
    if isbn.strip():
        return SourceQuery(isbn=service.require_isbn(isbn).isbn13)
    query = SourceQuery(title=title.strip() or None, author=author.strip() or None, publisher=publisher.strip() or None)
    if not (query.title or query.author or query.publisher):
        raise InvalidInput("source_query_empty")
    return query


async def _copy_page(request: Request, query: SourceQuery, wait: bool) -> dict[str, Any] | None:
    """The copy-cataloguing part of the intake page: a place per enabled target that the page
    fills as each answers, or (`wait`) every answer now; None when no target is enabled."""
    enabled = await targets.enabled_targets()
    if not enabled:
        return None
    asked = urlencode([(name, value) for name, value in (("isbn", query.isbn), ("title", query.title),
                                                         ("author", query.author), ("publisher", query.publisher))
                       if value])
    answers = None
    if wait:
        answers = [copy_intake.answer_view(answer, _today(request), request.app.state.settings.secret_key)
                   for answer in await copy_intake.ask_all(enabled, query)]
    return {"targets": [{"uuid": target.uuid, "name": target.name} for target in enabled], "asked": asked,
            "answers": answers, "isbn": query.isbn or ""}


# --- staff ----------------------------------------------------------------------------------


class StaffCataloguePages(Controller):
    include_in_schema = False
    opt = {"permission": "records.edit"}
    path = "/staff/catalog"

    @get("/", name="staff_catalog")
    async def intake_form(self, request: Request, isbn: Annotated[str | None, QueryParameter()] = None,
                          wait: Annotated[bool, QueryParameter()] = False) -> Template | Redirect:
        """Scanning is a look-up (GET): the ISBN read, and the network's record; else the other
        libraries' candidates (`wait`: all of them in this answer, for a browser without
        JavaScript), or a form to make one."""
        if isbn is None:
            return page(request, "catalog/intake.html", isbn="", error=None)
        try:
            found = await service.intake(isbn)
        except DomainError as error:
            return page(request, "catalog/intake.html", status_code=error.status, isbn=isbn, error=error.message())
        if len(found["records"]) > 1:
            # One ISBN, several books (an ISBN reused by a Chinese publisher, or misprinted): the
            # librarian picks the book in her hands, or catalogues another one.
            return page(request, "catalog/intake.html", isbn=found["isbn"].isbn13, error=None,
                        records=found["records"], hyphenated=found["isbn"].hyphenated)
        if found["record"]:
            return Redirect(path=f"/staff/catalog/records/{found['record']['uuid']}?scanned=1", status_code=303)
        # Not in our catalogue: the other libraries' catalogues are asked (copy cataloguing).
        copy = await _copy_page(request, SourceQuery(isbn=found["isbn"].isbn13), wait)
        if copy is None:
            return Redirect(path=f"/staff/catalog/records/new?isbn={found['isbn'].isbn13}", status_code=303)
        return page(request, "catalog/intake.html", isbn=found["isbn"].isbn13, error=None,
                    hyphenated=found["isbn"].hyphenated, copy=copy)

    @get("/copy", name="staff_copy_search")
    async def copy_search(
        self, request: Request,
        title: Annotated[str, QueryParameter(max_length=200)] = "",
        author: Annotated[str, QueryParameter(max_length=200)] = "",
        publisher: Annotated[str, QueryParameter(max_length=200)] = "",
        wait: Annotated[bool, QueryParameter()] = False,
    ) -> Template:
        """A book without an ISBN: the other catalogues asked by title, author and publisher."""
        words = {"title": title, "author": author, "publisher": publisher}
        if not any(value.strip() for value in words.values()):
            return page(request, "catalog/intake.html", isbn="", error=None, copy=None, copy_query=words)
        copy = await _copy_page(request, _copy_query("", title, author, publisher), wait)
        return page(request, "catalog/intake.html", isbn="", error=None, copy=copy or {"targets": []},
                    copy_query=words)

    @get("/copy/answers/{uuid:str}", name="staff_copy_answer")
    async def copy_answer(
        self, request: Request, uuid: FromPath[str],
        isbn: Annotated[str, QueryParameter(max_length=32)] = "",
        title: Annotated[str, QueryParameter(max_length=200)] = "",
        author: Annotated[str, QueryParameter(max_length=200)] = "",
        publisher: Annotated[str, QueryParameter(max_length=200)] = "",
    ) -> Template:
        """One target's answer, as a piece of the intake page (fetched by the page, one per target,
        so that each answer shows as it arrives)."""
        query = _copy_query(isbn, title, author, publisher)
        target = await targets.target(uuid)
        answer = await copy_intake.ask(target, query)
        return Template(template_name="catalog/_copy_answer.html", context={
            "answer": copy_intake.answer_view(answer, _today(request), request.app.state.settings.secret_key)})

    @post("/copy/take", name="staff_copy_take")
    async def copy_take(self, request: Request) -> Template | Redirect:
        """Take a candidate: the record made from it through our MARC mapping, with its
        provenance; then the record form, filled, for the librarian to check."""
        form = await request.form()
        try:
            target = await targets.target(form.get("target", ""))
            raw = copy_intake.verified(request.app.state.settings.secret_key, target, form.get("token", ""))
            if raw is None:
                raise InvalidInput("copy_not_genuine")
            uuid = await service.take_copy(copy_intake.taken(raw, target), target, principal_of(request).audit_name,
                                           _today(request), now_utc())
        except SourceFailed as failed:
            return page(request, "catalog/intake.html", status_code=422, isbn=form.get("isbn", ""),
                        error=copy_intake.Answer(target, failure=failed.reason, detail=failed.detail).message())
        except DomainError as error:
            return page(request, "catalog/intake.html", status_code=error.status, isbn=form.get("isbn", ""),
                        error=error.message(),
                        existing=error.params.get("record") if error.code == "record_exists" else None)
        return Redirect(path=f"/staff/catalog/records/{uuid}/edit", status_code=303)

    @get("/records/new", name="staff_record_new")
    async def new_record(self, request: Request, isbn: Annotated[str | None, QueryParameter()] = None) -> Template:
        settings = request.app.state.settings
        prefill, source = {}, None
        if isbn:
            parsed = service.require_isbn(isbn)
            found = await metadata.lookup(parsed.isbn13, metadata.providers_from(
                settings.metadata_providers, settings.metadata_timeout), now_utc())
            if found:
                source = found.pop("source")
                prefill = found
            prefill["isbn"] = parsed.hyphenated
        return page(request, "catalog/record_form.html", values=forms.form_values_of(prefill), errors={},
                    error=None, source=source, looked_up=bool(isbn), record=None)

    @post("/records/new")
    async def create_record(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            data, values = forms.record_input(form)
            uuid = await service.create_record(data, principal_of(request).audit_name, _today(request))
        except DomainError as error:
            return self._form_error(request, form, error, None)
        settings = request.app.state.settings
        parsed = service.parse_isbn(data.isbn or "")
        if form.get("fetch_cover") and isinstance(parsed, service.Isbn):
            # Online, the metadata service's cover is fetched and kept locally; offline, none.
            cover = await metadata.fetch_cover(parsed.isbn13, settings.covers_dir, settings.metadata_timeout)
            if cover:
                await service.set_cover(uuid, cover, principal_of(request).audit_name)
        return Redirect(path=f"/staff/catalog/records/{uuid}?created=1", status_code=303)

    def _form_error(self, request: Request, form: Any, error: DomainError, record: dict | None) -> Template:
        try:
            values = forms.record_input(form)[1]
        except InvalidRecord:
            values = {key: form.get(key, "") for key in form.keys()}
        errors = error.by_field() if isinstance(error, InvalidRecord) else {error.field or "": error.message()}
        return page(request, "catalog/record_form.html", status_code=error.status, values=values, errors=errors,
                    error=error.message(), source=None, looked_up=False, record=record,
                    existing=error.params.get("record") if error.code == "record_exists" else None)

    @get("/records/{uuid:str}", name="staff_record")
    async def record(self, request: Request, uuid: FromPath[str],
                     scanned: Annotated[bool, QueryParameter()] = False,
                     created: Annotated[bool, QueryParameter()] = False) -> Template:
        return await self._record_page(request, uuid, scanned=scanned, created=created)

    async def _record_page(self, request: Request, uuid: str, error: DomainError | None = None,
                           **context: Any) -> Template:
        record = await service.record_detail(uuid)
        mine = await _my_branches(request)
        rooms = await branches.rooms_by_branch([b["code"] for b in mine])
        here = [h for h in record["holdings"] if any(b["code"] == h["branch"] for b in mine)]
        return page(request, "catalog/staff_record.html", status_code=error.status if error else 200, record=record,
                    branches=mine, rooms=rooms, here=here, error=error.message() if error else None,
                    error_field=error.field if error else None, today=_today(request),
                    provenance=await service.record_provenance(uuid), **context)

    @get("/records/{uuid:str}/edit", name="staff_record_edit")
    async def edit_form(self, request: Request, uuid: FromPath[str]) -> Template:
        record = await service.record_detail(uuid)
        return page(request, "catalog/record_form.html", values=forms.form_values_of(record), errors={},
                    error=None, source=None, looked_up=False, record=record)

    @post("/records/{uuid:str}/edit", request_max_body_size=COVER_LIMIT + 65536)
    async def edit(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        record = await service.record_detail(uuid)
        try:
            data, _ = forms.record_input(form)
            data.cover = await self._cover(request, form, uuid) or record["cover"]
            await service.update_record(uuid, data, principal_of(request).audit_name, _today(request))
        except DomainError as error:
            return self._form_error(request, form, error, record)
        return Redirect(path=f"/staff/catalog/records/{uuid}", status_code=303)

    async def _cover(self, request: Request, form: Any, uuid: str) -> str | None:
        upload = form.get("cover")
        if not isinstance(upload, UploadFile):
            return None
        data = await upload.read(COVER_LIMIT + 1)
        if not data:
            return None
        if len(data) > COVER_LIMIT:
            raise InvalidInput("upload_too_large", field="cover", limit=2)
        extension = image_extension(data)
        if extension is None:
            raise InvalidInput("cover_type", field="cover")
        return store_cover(request.app.state.settings.covers_dir, uuid, data, extension)

    @post("/records/{uuid:str}/items")
    async def add_items(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        try:
            barcodes = await service.add_items(principal_of(request), uuid, forms.copies_input(form))
        except DomainError as error:
            return await self._record_page(request, uuid, error, values=dict(form))
        return Redirect(path="/staff/catalog/labels?barcodes=" + ",".join(barcodes), status_code=303)

    @post("/items/{barcode:str}/withdraw")
    async def withdraw(self, request: Request, barcode: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        uuid = form.get("record", "")
        try:
            await service.withdraw_item(principal_of(request), barcode, form.get("reason", ""))
        except DomainError as error:
            if not re.fullmatch(r"[0-9a-f\-]{36}", uuid):
                raise
            return await self._record_page(request, uuid, error)
        return Redirect(path=f"/staff/catalog/records/{uuid}" if uuid else "/staff/catalog/", status_code=303)

    @get("/labels", name="staff_labels")
    async def labels(self, request: Request, barcodes: Annotated[str, QueryParameter()] = "") -> Template:
        rows = await service.labels(barcodes.split(","))
        for row in rows:
            row["svg"] = barcode_svg(row["barcode"])
        return page(request, "catalog/labels.html", labels=rows)

    @get("/exchange", name="staff_exchange")
    async def exchange_page(self, request: Request) -> Template:
        return page(request, "catalog/exchange.html", report=None, error=None, branches=await _my_branches(request))

    @post("/exchange", request_max_body_size=IMPORT_LIMIT)
    async def import_file(self, request: Request) -> Template:
        form = await request.form()
        upload = form.get("file")
        mine = await _my_branches(request)
        try:
            if not isinstance(upload, UploadFile):
                raise InvalidInput("marc_empty", field="file")
            data = await upload.read()
            report = await batches.import_marc(data, principal_of(request).audit_name, _today(request),
                                                form.get("flavour", "auto"), form.get("branch") or None,
                                                imported_by=principal_of(request))
        except DomainError as error:
            return page(request, "catalog/exchange.html", status_code=error.status, report=None,
                        error=error.message(), branches=mine)
        refused = [{"position": r.position, "title": r.title,
                    "reason": r.reason.translated(gettext) if isinstance(r.reason, Note) else r.reason}
                   for r in report.skipped[:REFUSED_SHOWN]]
        return page(request, "catalog/exchange.html", report=report, refused=refused, error=None, branches=mine)

    @get("/export", opt={"permission": "records.export"}, name="staff_export")
    async def export(self, fmt: Annotated[str, QueryParameter(name="format")] = "marc21",
                     branch: Annotated[str | None, QueryParameter()] = None,
                     encoding: Annotated[str, QueryParameter()] = "utf-8") -> Stream:
        return await _export_stream(fmt, branch, encoding)


async def _export_stream(fmt: str, branch: str | None, encoding: str) -> Stream:
    await export.check_export(fmt, branch or None, encoding)
    # The file name from known values only: the branch code was just found in the database.
    name = f"catalog{'-' + branch if branch else ''}{'-gb18030' if encoding == 'gb18030' else ''}" \
           f"{'-cnmarc' if fmt == 'cnmarc' else ''}.{'xml' if fmt == 'marcxml' else 'mrc'}"
    return Stream(export.export_marc(fmt, branch or None, encoding=encoding),
                  media_type="application/marcxml+xml" if fmt == "marcxml" else "application/marc",
                  headers=attachment(name))


# --- API ---------------------------------------------------------------------------------------


class CatalogueAPI(Controller):
    path = "/api"
    opt = {"permission": "public"}
    tags = ["catalogue"]

    @get("/catalog/isbn/{text:str}", summary="Read an ISBN; the network's record for it, or metadata to start one")
    async def isbn(self, request: Request, text: FromPath[str],
                   lookup: Annotated[bool, QueryParameter()] = True) -> IntakeOut:
        found = await service.intake(text)
        prefill = None
        if found["record"] is None and lookup:
            settings = request.app.state.settings
            prefill = await metadata.lookup(found["isbn"].isbn13, metadata.providers_from(
                settings.metadata_providers, settings.metadata_timeout), now_utc())
        return IntakeOut(isbn13=found["isbn"].isbn13, hyphenated=found["isbn"].hyphenated,
                         isbn10=found["isbn"].isbn10,
                         record=RecordOut.from_view(found["record"]) if found["record"] else None, metadata=prefill,
                         records=[RecordOut.from_view(record) for record in found["records"]])

    @get("/records", summary="Search the catalogue: words, phrases in double quotes, fields (ti:, au:, su:, isbn:, "
                             "clc:), pinyin and initials; filters, facets, paging, and a suggestion when nothing is found")
    async def search(
        self,
        q: Annotated[str, QueryParameter(description=(
            'Words (each also found as the beginning of a longer word), "a phrase" in double quotes, '
            "ti:, au:, su: (title, author, subject), isbn:, clc: (a class number and everything under it); "
            "Chinese in characters, pinyin or initials. See docs/search.md."))] = "",
        age: Annotated[str | None, QueryParameter(pattern=_AGE_PATTERN, description=(
            'For an age ("5") or an age band ("3-5"); a record that gives no age is in none.'))] = None,
        format_: Annotated[str | None, QueryParameter(name="format")] = None,
        language: Annotated[str | None, QueryParameter()] = None,
        branch: Annotated[str | None, QueryParameter(description="A copy is at this branch (its code)")] = None,
        available: Annotated[bool, QueryParameter(description="A copy is on the shelf (at `branch`, if given)")] = False,
        year: Annotated[str | None, QueryParameter(pattern=_YEAR_PATTERN, description=(
            'Published in this year ("2008") or range ("2000-2009", "-1959", "2020-").'))] = None,
        sort: Annotated[str, QueryParameter(pattern="^(relevance|newest|title)$")] = "relevance",
        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=10000)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=service.PAGE_SIZE_LIMIT)] = 20,
        facets: Annotated[bool, QueryParameter(description=(
            "Also count the matches per branch, availability, age band, format, language and decade"))] = False,
    ) -> SearchOut:
        result = await service.search(q, _filters(age, format_, language, branch, available, year), sort,
                                      page_number, page_size, facets=facets)
        return msgspec.convert(result, SearchOut, from_attributes=False, strict=False)

    @get("/records/{uuid:str}", summary="One record with its copies and holdings per branch")
    async def record(self, uuid: FromPath[str]) -> RecordOut:
        return RecordOut.from_view(await service.record_detail(uuid))

    @post("/records", opt={"permission": "records.edit"}, summary="Catalogue a new record")
    async def create(self, request: Request, data: JSONBody[RecordIn]) -> RecordOut:
        uuid = await service.create_record(data.to_input(), principal_of(request).audit_name, _today(request))
        return RecordOut.from_view(await service.record_detail(uuid))

    @put("/records/{uuid:str}", opt={"permission": "records.edit"}, summary="Change a record")
    async def update(self, request: Request, uuid: FromPath[str], data: JSONBody[RecordIn]) -> RecordOut:
        await service.update_record(uuid, data.to_input(), principal_of(request).audit_name, _today(request))
        return RecordOut.from_view(await service.record_detail(uuid))

    @post("/records/{uuid:str}/items", opt={"permission": "records.edit"}, summary="Add copies (scanned or generated barcodes)")
    async def add_items(self, request: Request, uuid: FromPath[str], data: JSONBody[CopiesIn]) -> list[str]:
        return await service.add_items(principal_of(request), uuid, data.to_input())

    @get("/items/{barcode:str}", summary="A copy by its barcode, with its record")
    async def item(self, barcode: FromPath[str]) -> ItemDetailOut:
        return msgspec.convert(await service.item_detail(barcode), ItemDetailOut, strict=False)

    @post("/items/{barcode:str}/withdraw", opt={"permission": "records.edit"}, summary="Withdraw a copy, with the reason",
          status_code=204)
    async def withdraw(self, request: Request, barcode: FromPath[str], data: JSONBody[WithdrawIn]) -> None:
        await service.withdraw_item(principal_of(request), barcode, data.reason)

    @post("/catalog/import", opt={"permission": "records.edit"}, request_max_body_size=IMPORT_LIMIT,
          summary="Import a MARC file (multipart field 'file'; 'format' auto|marc21|cnmarc; 'branch')")
    async def import_file(
        self, request: Request,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> ImportReportOut:
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("marc_empty", field="file")
        report = await batches.import_marc(await upload.read(), principal_of(request).audit_name, _today(request),
                                            data.get("format", "auto"), data.get("branch") or None,
                                            imported_by=principal_of(request))
        return ImportReportOut.from_report(report)

    @get("/catalog/export", opt={"permission": "records.export"}, 
         summary="Export MARC21 (format=marc21), MARCXML or CNMARC (encoding=utf-8 or gb18030)")
    async def export(self, fmt: Annotated[str, QueryParameter(name="format")] = "marc21",
                     branch: Annotated[str | None, QueryParameter()] = None,
                     encoding: Annotated[str, QueryParameter()] = "utf-8") -> Stream:
        return await _export_stream(fmt, branch, encoding)


class CopyTargetPages(Controller):
    """The catalogues intake copies from: administrators add, change, switch on and off, and
    try them here."""

    include_in_schema = False
    opt = {"permission": "sources.edit"}
    path = "/staff/catalog/targets"

    @get("/", name="staff_copy_targets")
    async def list_page(self, request: Request) -> Template:
        return _targets_page(request, await targets.list_targets())

    @post("/")
    async def create(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            await targets.save_target(targets.target_input(form), principal_of(request).audit_name)
        except DomainError as error:
            return _targets_page(request, await targets.list_targets(), error=error, values=dict(form))
        return Redirect(path="/staff/catalog/targets/", status_code=303)

    @get("/{uuid:str}", name="staff_copy_target")
    async def edit_page(self, request: Request, uuid: FromPath[str]) -> Template:
        target = await targets.target_detail(uuid)
        return page(request, "catalog/copy_target.html", target=target, values=target, errors={}, error=None,
                    answer=None)

    @post("/{uuid:str}")
    async def update(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        try:
            await targets.save_target(targets.target_input(form), principal_of(request).audit_name, uuid)
        except DomainError as error:
            target = await targets.target_detail(uuid)
            return page(request, "catalog/copy_target.html", status_code=error.status, target=target,
                        values={**dict(form), "has_password": target["has_password"]}, errors=_errors(error),
                        error=error.message(), answer=None)
        return Redirect(path="/staff/catalog/targets/", status_code=303)

    @post("/{uuid:str}/enabled")
    async def switch(self, request: Request, uuid: FromPath[str]) -> Redirect:
        form = await request.form()
        await targets.set_enabled(uuid, form.get("enabled") == "1", principal_of(request).audit_name)
        return Redirect(path="/staff/catalog/targets/", status_code=303)

    @post("/{uuid:str}/test")
    async def test(self, request: Request, uuid: FromPath[str]) -> Template:
        """Ask the target (enabled or not) for an ISBN or a title, and show what it answered."""
        form = await request.form()
        detail = await targets.target_detail(uuid)
        try:
            query = _copy_query(form.get("isbn", ""), form.get("title", ""), "", "")
        except DomainError as error:
            return page(request, "catalog/copy_target.html", status_code=error.status, target=detail, values=detail,
                        errors={}, error=error.message(), answer=None)
        answer = await copy_intake.ask(await targets.target(uuid), query)
        return page(request, "catalog/copy_target.html", target=detail, values=detail, errors={}, error=None,
                    answer=copy_intake.answer_view(answer, _today(request), request.app.state.settings.secret_key),
                    tried=form.get("isbn") or form.get("title"))


def _errors(error: DomainError) -> dict[str, str]:
    return error.by_field() if isinstance(error, InvalidRecord) else {error.field or "": error.message()}


def _targets_page(request: Request, rows: list[dict[str, Any]], error: DomainError | None = None,
                  values: dict[str, Any] | None = None) -> Template:
    return page(request, "catalog/copy_targets.html", status_code=error.status if error else 200, targets=rows,
                values=values or {"protocol": "z3950", "port": "210", "syntax": "marc21", "charset": "utf-8",
                                  "timeout_seconds": "10"},
                errors=_errors(error) if error else {}, error=error.message() if error else None)


ROUTES = [CataloguePages, StaffCataloguePages, CopyTargetPages, CatalogueAPI]
