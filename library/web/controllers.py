"""The shell every domain shares: home page, language switch, health and the bench ceiling."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from library.branches import service as branches
from library.clock import today_in
from library.db import database_ok
from library.settings import LANGUAGES
from library.web.auth import LANGUAGE_COOKIE
from library.web.forms import safe_next
from library.web.templating import page

ONE_YEAR = 365 * 24 * 3600


@get("/", opt={"permission": "public"}, include_in_schema=False, name="home")
async def home(request: Request) -> Template:
    settings = request.app.state.settings
    return page(request, "home.html", branches=await branches.list_branches(today_in(settings.time_zone)))


@get("/language", opt={"permission": "public"}, include_in_schema=False, name="language")
async def switch_language(
    lang: Annotated[str, QueryParameter()], next_: Annotated[str | None, QueryParameter(name="next")] = None
) -> Redirect:
    response = Redirect(path=safe_next(next_), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=ONE_YEAR, httponly=True, samesite="lax", path="/")
    return response


@get("/health", opt={"permission": "public"}, tags=["system"], summary="Service and database health")
async def health() -> Response[dict[str, str]]:
    if await database_ok():
        return Response({"status": "ok", "database": "ok"})
    return Response(
        {"type": "about:blank", "status": 503, "title": "Service unavailable", "detail": "database unreachable",
         "database": "unreachable", "code": "database_unavailable"},
        status_code=503,
        media_type="application/problem+json",
    )


@get("/api/ping", tags=["system"], summary="A plain JSON answer with no database work (the bench ceiling)",
     opt={"database": False, "permission": "public"})
async def ping() -> dict[str, str]:
    return {"status": "ok"}


ROUTES = [home, switch_language, health, ping]
