"""A record's MARC for staff: as it came in, where from, what was edited here, and as it goes
out now in MARC21, MARCXML or CNMARC (UTF-8 or GB18030)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Response, Template

from library.catalog import export, marc_record, service
from library.clock import today_in
from library.errors import InvalidInput
from library.web.auth import principal_of
from library.web.downloads import attachment
from library.web.templating import page

MEDIA_TYPES = {"marc21": "application/marc", "cnmarc": "application/marc", "marcxml": "application/marcxml+xml"}


class StaffMarcPages(Controller):
    include_in_schema = False
    opt = {"permission": "records.edit"}
    path = "/staff/catalog/records/{uuid:str}"

    @get("/marc", name="staff_record_marc")
    async def marc(self, request: Request, uuid: FromPath[str],
                   fmt: Annotated[str | None, QueryParameter(name="format")] = None) -> Template:
        uuid = service.valid_uuid(uuid)
        today = today_in(request.app.state.settings.time_zone)
        view, _ = await export.one_record(uuid, "marc21", today)
        shown = fmt if fmt in ("marc21", "cnmarc") else (view.get("marc_format") or "marc21")
        _, out = await export.one_record(uuid, shown, today)
        differing = export.differing_groups(view, today) \
            if view.get("marc") and view.get("marc_format") == shown else []
        return page(request, "catalog/record_marc.html", record=view, kept=export.kept_fields(view),
                    out=export.display_fields(out), shown=shown, differing=differing,
                    groups=list(marc_record.GROUPS))

    @post("/marc/take-incoming")
    async def take_incoming(self, request: Request, uuid: FromPath[str]) -> Redirect:
        form = await request.form()
        await service.take_incoming(uuid, form.get("group", ""), principal_of(request).audit_name,
                                    today_in(request.app.state.settings.time_zone))
        return Redirect(path=f"/staff/catalog/records/{service.valid_uuid(uuid)}/marc", status_code=303)

    # A path parameter is a whole segment in Litestar ("marc.{ext}" never matches): the file is
    # /marc/file, its name (and extension) in Content-Disposition.
    @get("/marc/file", name="staff_record_marc_file")
    async def marc_file(self, request: Request, uuid: FromPath[str],
                        fmt: Annotated[str, QueryParameter(name="format")] = "marc21",
                        encoding: Annotated[str, QueryParameter()] = "utf-8") -> Response:
        uuid = service.valid_uuid(uuid)
        if fmt not in export.FORMATS:
            raise InvalidInput("invalid_choice", field="format")
        if encoding not in export.ENCODINGS or (encoding != "utf-8" and fmt != "cnmarc"):
            raise InvalidInput("invalid_choice", field="encoding")
        _, out = await export.one_record(uuid, "cnmarc" if fmt == "cnmarc" else "marc21",
                                         today_in(request.app.state.settings.time_zone))
        name = f"{uuid}.{'xml' if fmt == 'marcxml' else 'mrc'}"
        return Response(export.encoded([out], fmt, encoding), media_type=MEDIA_TYPES[fmt],
                        headers=attachment(name))


ROUTES = [StaffMarcPages]
