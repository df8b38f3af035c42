"""Staged imports over HTTP: the staff pages (upload, a batch's page, the list of batches) and the
JSON API for the same (library.catalog.batches does the work)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Stream, Template

from library.branches import service as branches
from library.catalog import batches
from library.catalog.marc import encoding_choice
from library.clock import today_in
from library.errors import DomainError, InvalidInput
from library.i18n import N_, gettext
from library.web.auth import principal_of
from library.web.downloads import attachment, short_id
from library.web.templating import page

IMPORT_LIMIT = 100 * 1024 * 1024
STATUS_LABELS = {"staging": N_("being read"), "staged": N_("staged: waiting to be committed"),
                 "committing": N_("being committed"), "committed": N_("committed"), "undoing": N_("being undone"),
                 "undone": N_("undone"), "failed": N_("failed")}
OUTCOME_LABELS = {"refused": N_("Refused"), "warnings": N_("With warnings"), "matched": N_("Matched (overlaid)"),
                  "new": N_("New (with a possible duplicate or a warning)"), "unchanged": N_("Unchanged"),
                  "ignored": N_("Ignored")}
KEPT_REASONS = {"lent_since": N_("a copy was lent or held since the import"),
                "held_since": N_("a reader placed a hold on it, or logged reading it, since the import"),
                "changed_since": N_("changed since the import"),
                "copies_since": N_("it has copies added since the import")}


def _today(request: Request) -> dt.date:
    return today_in(request.app.state.settings.time_zone)


def _directory(request: Request):
    return batches.imports_dir(request.app.state.settings.data_dir)


def shown_note(note: dict[str, Any] | str) -> str:
    """A kept warning or reason in the reader's language (library.catalog.conversion.note_json)."""
    if isinstance(note, str):
        return note
    msgid = note.get("msgid")
    if msgid:
        try:
            return gettext(msgid).format(**(note.get("params") or {}))
        except (KeyError, IndexError, ValueError):
            pass
    return note.get("text", "")


async def _stage_upload(request: Request, upload: Any, form: dict[str, Any]) -> str:
    """A file sent with a form or the API, kept and staged: its batch's uuid."""
    if not isinstance(upload, UploadFile):
        raise InvalidInput("marc_empty", field="file")
    settings = request.app.state.settings
    batch_uuid = await batches.new_batch(
        upload.file, upload.filename or "", principal_of(request).audit_name,
        flavour=form.get("format") or form.get("flavour") or "auto",
        encoding=encoding_choice(form.get("encoding") or "auto"), default_branch=form.get("branch") or None,
        on_match=form.get("on_match") or "overlay", match_points=settings.catalog_match_points,
        imported_by=principal_of(request), directory=_directory(request), max_bytes=IMPORT_LIMIT)
    await batches.stage(batch_uuid, _today(request), directory=_directory(request))
    return batch_uuid


def _refused_download(batch_uuid: str, chunks: Any) -> Stream:
    return Stream(chunks, media_type="application/marc",
                  headers=attachment(f"refused-{short_id(batch_uuid)}.mrc"))


class ImportPages(Controller):
    include_in_schema = False
    opt = {"permission": "records.edit"}
    path = "/staff/catalog/imports"

    async def _list_page(self, request: Request, error: str | None = None, status_code: int = 200,
                         page_number: int = 1) -> Template:
        listed = await batches.list_batches(page_number)
        return page(request, "catalog/exchange.html", status_code=status_code, error=error,
                    branches=await branches.branch_choices(principal_of(request)), listed=listed,
                    status_labels=STATUS_LABELS)

    @get("/", name="staff_imports")
    async def list_page(self, request: Request,
                        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1) -> Template:
        return await self._list_page(request, page_number=page_number)

    @post("/", request_max_body_size=IMPORT_LIMIT + 65536)
    async def upload(self, request: Request) -> Template | Redirect:
        form = await request.form()
        try:
            batch_uuid = await _stage_upload(request, form.get("file"), dict(form))
        except DomainError as error:
            return await self._list_page(request, error.message(), error.status)
        return Redirect(f"/staff/catalog/imports/{batch_uuid}", status_code=303)

    async def _batch_page(self, request: Request, batch_uuid: str, show: str = "refused", page_number: int = 1,
                          error: str | None = None, status_code: int = 200) -> Template:
        batch = await batches.batch_detail(batch_uuid)
        if show not in batches.OUTCOMES:
            show = "refused"
        listed = await batches.batch_records(batch_uuid, show, page_number)
        for row in listed["records"]:
            row["shown_reason"] = shown_note(row.get("reason_note") or row["reason"]) if row["outcome"] == "refused" \
                else row["reason"]
            row["shown_warnings"] = [shown_note(note) for note in row["warnings"]]
        return page(request, "catalog/batch.html", status_code=status_code, batch=batch, listed=listed, show=show,
                    error=error, status_labels=STATUS_LABELS, outcome_labels=OUTCOME_LABELS,
                    kept_reasons=KEPT_REASONS)

    @get("/{uuid:str}", name="staff_import")
    async def batch_page(self, request: Request, uuid: FromPath[str],
                         show: Annotated[str, QueryParameter()] = "refused",
                         page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1) -> Template:
        return await self._batch_page(request, uuid, show, page_number)

    async def _act(self, request: Request, uuid: str, action) -> Template | Redirect:
        try:
            await action()
        except DomainError as error:
            return await self._batch_page(request, uuid, error=error.message(), status_code=error.status)
        return Redirect(f"/staff/catalog/imports/{uuid}", status_code=303)

    @post("/{uuid:str}/choice")
    async def choose(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        return await self._act(request, uuid, lambda: batches.choose(uuid, form.get("on_match") or ""))

    @post("/{uuid:str}/commit")
    async def commit(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        return await self._act(request, uuid, lambda: batches.commit(
            uuid, principal_of(request).audit_name, _today(request), on_match=form.get("on_match") or None,
            directory=_directory(request)))

    @post("/{uuid:str}/undo")
    async def undo(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        return await self._act(request, uuid, lambda: batches.undo(uuid, principal_of(request).audit_name))

    @post("/{uuid:str}/discard")
    async def discard(self, request: Request, uuid: FromPath[str]) -> Template | Redirect:
        try:
            await batches.discard(uuid, directory=_directory(request))
        except DomainError as error:
            return await self._batch_page(request, uuid, error=error.message(), status_code=error.status)
        return Redirect("/staff/catalog/imports", status_code=303)

    @get("/{uuid:str}/refused.mrc", name="staff_import_refused")
    async def refused(self, request: Request, uuid: FromPath[str]) -> Stream:
        return _refused_download(uuid, await batches.refused_file(uuid, directory=_directory(request)))


# --- API -----------------------------------------------------------------------------------------


class ImportCountsOut(msgspec.Struct):
    read: int
    new: int
    matched: int
    unchanged: int
    ignored: int
    refused: int
    with_warnings: int
    possible_duplicates: int
    copies_new: int
    copies_changed: int


class ImportBatchOut(msgspec.Struct):
    uuid: str
    file_name: str
    status: str
    flavour: str
    flavour_seen: str
    encoding: str
    on_match: str
    default_branch: str
    counts: ImportCountsOut
    error: str
    staged_at: dt.datetime | None
    committed_at: dt.datetime | None
    undone_at: dt.datetime | None
    undo_report: dict[str, Any]

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> ImportBatchOut:
        return cls(uuid=view["uuid"], file_name=view["file_name"], status=view["status"], flavour=view["flavour"],
                   flavour_seen=view["flavour_seen"], encoding=view["encoding"], on_match=view["on_match"],
                   default_branch=view["default_branch"], counts=ImportCountsOut(**view["counts"]),
                   error=view["error"], staged_at=view["staged_at"], committed_at=view["committed_at"],
                   undone_at=view["undone_at"], undo_report=view["undo_report"])


class ImportBatchListOut(msgspec.Struct):
    batches: list[ImportBatchOut]
    total: int
    page: int
    page_size: int


class ImportRecordOut(msgspec.Struct):
    position: int
    outcome: str
    record: str | None
    control_number: str
    title: str
    reason: str
    warnings: list[str]


class ImportRecordsOut(msgspec.Struct):
    records: list[ImportRecordOut]
    total: int
    page: int
    page_size: int
    outcome: str


class CommitIn(msgspec.Struct, forbid_unknown_fields=True):
    on_match: str | None = None


class ImportAPI(Controller):
    path = "/api/catalog/imports"
    tags = ["catalogue"]
    opt = {"permission": "records.edit"}

    @post("/", request_max_body_size=IMPORT_LIMIT + 65536, status_code=201,
          summary="Stage a MARC file (multipart: 'file'; 'format' auto|marc21|cnmarc; 'encoding' "
                  "auto|utf-8|marc-8|gb18030; 'branch'; 'on_match' overlay|add|ignore; 'commit' true to commit at once)")
    async def stage(self, request: Request,
                    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]) -> ImportBatchOut:
        batch_uuid = await _stage_upload(request, data.get("file"), data)
        if str(data.get("commit", "")).lower() in ("1", "true", "yes", "on"):
            await batches.commit(batch_uuid, principal_of(request).audit_name, _today(request),
                                 directory=_directory(request))
        return ImportBatchOut.from_view(await batches.batch_detail(batch_uuid))

    @get("/", summary="Import batches, newest first")
    async def list(self, page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1,
                   page_size: Annotated[int, QueryParameter(ge=1, le=100)] = 20) -> ImportBatchListOut:
        listed = await batches.list_batches(page_number, page_size)
        return ImportBatchListOut(batches=[ImportBatchOut.from_view(view) for view in listed["batches"]],
                                  total=listed["total"], page=listed["page"], page_size=listed["page_size"])

    @get("/{uuid:str}", summary="One import batch: its status and counts")
    async def batch(self, uuid: FromPath[str]) -> ImportBatchOut:
        return ImportBatchOut.from_view(await batches.batch_detail(uuid))

    @get("/{uuid:str}/records", summary="A page of a batch's records of one outcome (refused, warnings, matched, "
                                        "new, unchanged, ignored), in file order")
    async def records(self, uuid: FromPath[str], outcome: Annotated[str, QueryParameter()] = "refused",
                      page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100000)] = 1,
                      page_size: Annotated[int, QueryParameter(ge=1, le=500)] = 100) -> ImportRecordsOut:
        listed = await batches.batch_records(uuid, outcome, page_number, page_size)
        return ImportRecordsOut(records=[ImportRecordOut(
            position=row["position"], outcome=row["outcome"], record=row["record"],
            control_number=row["control_number"], title=row["title"], reason=row["reason"],
            warnings=[note.get("text", "") if isinstance(note, dict) else str(note) for note in row["warnings"]])
            for row in listed["records"]], total=listed["total"], page=listed["page"],
            page_size=listed["page_size"], outcome=listed["outcome"])

    @get("/{uuid:str}/refused.mrc", summary="The refused records as they were in the file, to fix and load again")
    async def refused(self, request: Request, uuid: FromPath[str]) -> Stream:
        return _refused_download(uuid, await batches.refused_file(uuid, directory=_directory(request)))

    @post("/{uuid:str}/commit", summary="Commit a staged batch (optionally with the choice for matched records)")
    async def commit(self, request: Request, uuid: FromPath[str],
                     data: JSONBody[CommitIn | None] = None) -> ImportBatchOut:
        await batches.commit(uuid, principal_of(request).audit_name, _today(request),
                             on_match=data.on_match if data else None, directory=_directory(request))
        return ImportBatchOut.from_view(await batches.batch_detail(uuid))

    @post("/{uuid:str}/undo", summary="Undo a committed batch; what was left in place, and why, is in undo_report")
    async def undo(self, request: Request, uuid: FromPath[str]) -> ImportBatchOut:
        await batches.undo(uuid, principal_of(request).audit_name)
        return ImportBatchOut.from_view(await batches.batch_detail(uuid))


ROUTES = [ImportPages, ImportAPI]
