"""/sru: the catalogue as an SRU server (library.catalog.sru) for other libraries' cataloguing
clients and for our branches. Open to anyone, as the public catalogue is: GET only, no session
cookie, no CSRF token (library.app leaves the path out of both), XML in and out."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Response

from library.catalog import sru
from library.clock import today_in

XML = "text/xml; charset=utf-8"


class SruServer(Controller):
    include_in_schema = False  # an XML protocol of its own, not part of the JSON API
    opt = {"permission": "public"}

    @get("/sru", name="sru")
    async def sru(self, request: Request) -> Response:
        params: dict[str, str] = {}
        for name, value in request.query_params.multi_items():
            params.setdefault(name, value)  # a repeated parameter: the first one counts
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        today = today_in(request.app.state.settings.time_zone)
        return Response(await sru.answer(params, url.hostname or "localhost", port, today), media_type=XML)
