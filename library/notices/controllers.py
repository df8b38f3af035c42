"""/account/notices: a reader chooses which notices they receive."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from library.errors import DomainError
from library.notices import service
from library.web.auth import principal_of
from library.web.templating import page


class NoticeChoices(Controller):
    include_in_schema = False
    opt = {"permission": "reader"}
    path = "/account/notices"

    @get("/", name="account_notices")
    async def show(self, request: Request) -> Template:
        return page(request, "notices/choices.html", choices=await service.choices_of(principal_of(request)),
                    done=request.query_params.get("done"))

    @post("/")
    async def save(self, request: Request) -> Template | Redirect:
        form = await request.form()
        principal = principal_of(request)
        try:
            await service.set_choices(principal, set(form.getall("receive", [])))
        except DomainError as error:
            return page(request, "notices/choices.html", status_code=error.status,
                        choices=await service.choices_of(principal), error=error.message())
        return Redirect(path="/account/notices?done=saved", status_code=303)


ROUTES = [NoticeChoices]
