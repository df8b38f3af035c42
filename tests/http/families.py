"""What the activity tests of a family share: who is acting, and the sessions they act on."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import httpx

from library.accounts.principal import Principal
from library.accounts.tables import GuardianLink, Patron
from library.activities.tables import Occurrence
from tests.support import csrf_token_from, sign_in_patron

LIBRARIAN = Principal(kind="staff", id=0, uuid="family-tests", name="馆员", language="zh_CN", role="administrator",
                      all_branches=True)


async def reader(card: str) -> Principal:
    """A reader as the site sees them once signed in, with the children linked to them."""
    me = await Patron.select(Patron.id, Patron.uuid, Patron.name).where(Patron.card_number == card).first()
    children = await GuardianLink.select(GuardianLink.child).where(GuardianLink.guardian == me["id"])
    return Principal(kind="patron", id=me["id"], uuid=str(me["uuid"]), name=me["name"], language="zh_CN",
                     children_ids=frozenset(row["child"] for row in children))


async def session_at(title: str, original_start: dt.datetime | None = None) -> str:
    """A session of an event by its title: the one the series gave for `original_start`, else the first."""
    query = Occurrence.select(Occurrence.uuid).where(Occurrence.event.title_zh == title)
    if original_start is not None:
        query = query.where(Occurrence.original_start == original_start)
    row = await query.order_by(Occurrence.original_start).first()
    assert row, f"no session of {title} planned for {original_start}"
    return str(row["uuid"])


async def sessions_of(title: str) -> list[dict]:
    return await Occurrence.select(Occurrence.uuid, Occurrence.original_start, Occurrence.local_start).where(
        Occurrence.event.title_zh == title).order_by(Occurrence.original_start)


@contextlib.asynccontextmanager
async def signed_in(app, card: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another reader on a browser of their own, beside the test's client."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50001)),
                                 base_url="http://testserver") as other:
        await sign_in_patron(other, card)
        yield other


async def register(client: httpx.AsyncClient, session: str, *cards: str) -> str:
    """Sign people up on the session's page, as a parent does; the page that answers."""
    page = await client.get(f"/activities/sessions/{session}")
    answer = await client.post(f"/activities/sessions/{session}/register",
                               data={"_csrf_token": csrf_token_from(page.text), "card": list(cards)})
    assert answer.status_code == 200, answer.text
    return answer.text
