"""Static files and the iCalendar feeds answer a client that holds the current copy with a 304 and no
body (library/web/conditional.py): a calendar app polling every few minutes, a browser on every page."""

from __future__ import annotations

from library.activities.tables import Event
from library.branches.tables import Branch
from library.web.security import SECURITY_HEADERS


async def test_static_file_validators_and_304(client):
    first = await client.get("/static/library.css")
    assert first.status_code == 200 and first.content
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert "max-age=300" in first.headers["cache-control"] and "public" in first.headers["cache-control"]

    again = await client.get("/static/library.css", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers.get("content-length") in (None, "0")
    assert "content-type" not in again.headers
    for name, value in SECURITY_HEADERS.items():
        assert again.headers[name] == value
    weak = await client.get("/static/library.css", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    since = await client.get("/static/library.css", headers={"If-Modified-Since": modified})
    assert since.status_code == 304 and since.content == b""
    head = await client.head("/static/library.css", headers={"If-None-Match": etag})
    assert head.status_code == 304

    # A browser holding an older copy, or sending a date it cannot have seen: the whole file.
    stale = await client.get("/static/library.css", headers={"If-None-Match": '"an-older-copy"'})
    assert stale.status_code == 200 and stale.content == first.content
    old_date = await client.get("/static/library.css", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert old_date.status_code == 200 and old_date.content == first.content
    garbage = await client.get("/static/library.css", headers={"If-Modified-Since": "yesterday-ish"})
    assert garbage.status_code == 200
    # If-None-Match wins over a matching date (RFC 9110): a changed file is sent.
    both = await client.get("/static/library.css", headers={"If-None-Match": '"x"', "If-Modified-Since": modified})
    assert both.status_code == 200


async def test_a_missing_file_is_not_turned_into_a_304(client):
    answer = await client.get("/static/nothing-here.css", headers={"If-None-Match": "*"})
    assert answer.status_code == 404


async def test_a_feed_answers_304_until_a_session_changes(client):
    """The feed's DTSTAMP changes every request; its tag changes only with its content."""
    first = await client.get("/activities/feeds/ZX.ics")
    assert first.status_code == 200 and b"BEGIN:VEVENT" in first.content
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    unchanged = await client.get("/activities/feeds/ZX.ics", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag

    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    await Event.update({Event.title_zh: Event.title_zh + "（改期）"}).where(Event.branch == branch["id"])
    changed = await client.get("/activities/feeds/ZX.ics", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "（改期）" in changed.text
    assert changed.headers["etag"] != etag
    # Another branch's feed keeps its own tag.
    room_feed = await client.get("/activities/feeds/ZX.ics", params={"room": "KIDS"})
    assert room_feed.headers["etag"] not in (etag, changed.headers["etag"])


async def test_a_feed_of_a_branch_that_does_not_exist_is_still_a_404(client):
    answer = await client.get("/activities/feeds/NOPE.ics", headers={"If-None-Match": "*"})
    assert answer.status_code == 404
