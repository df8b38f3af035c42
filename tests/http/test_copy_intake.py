"""Copy cataloguing over HTTP: administrators keep the catalogues to copy from; a scanned ISBN
that our catalogue lacks is asked of every enabled one; a librarian takes a candidate and the
record keeps where it came from."""

from __future__ import annotations

import html
import re

import pytest

from library.catalog.tables import CopyTarget, Record, RecordProvenance
from tests.integration.test_copy_sources import misbehaving
from tests.support import form_token, sign_in_staff
from tests.zebra_server import zebra_servers

zebra = pytest.fixture(scope="module")(zebra_servers)

ISBN = "9787544246507"  # 团圆, in the Chinese server's GBK CNMARC


async def add_target(client, **fields) -> str:
    token = await form_token(client, "/staff/catalog/targets/")
    values = {"protocol": "z3950", "syntax": "marc21", "charset": "utf-8", "timeout_seconds": "10",
              "database": "", "enabled": "1", **fields}
    response = await client.post("/staff/catalog/targets/", data={"_csrf_token": token, **values})
    assert response.status_code == 303, response.text
    row = await CopyTarget.select(CopyTarget.uuid).where(CopyTarget.name == fields["name"]).first()
    return str(row["uuid"])


def _fields(target) -> dict[str, str]:
    return {"name": target.name, "host": target.host, "port": str(target.port), "database": target.database,
            "syntax": target.syntax, "charset": target.charset}


async def test_only_an_administrator_keeps_the_catalogues(client):
    await sign_in_staff(client)  # a librarian
    assert (await client.get("/staff/catalog/targets/")).status_code == 403
    await sign_in_staff(client, "admin", "admin-demo-pass")
    page = await client.get("/staff/catalog/targets/")
    assert page.status_code == 200 and "data-copy-targets" in page.text


async def test_the_password_is_kept_but_never_shown_back(client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    uuid = await add_target(client, name="NLC", host="202.96.31.28", port="9991", database="NLC01",
                            syntax="unimarc", charset="gb18030", username="jx-branch", password="s3cret-Pass",
                            enabled="")
    edit = await client.get(f"/staff/catalog/targets/{uuid}")
    assert "s3cret-Pass" not in edit.text and "jx-branch" in edit.text
    # Saving the form as shown (the password field empty) keeps the password.
    token = re.search(r'name="_csrf_token" value="([^"]+)"', edit.text).group(1)
    await client.post(f"/staff/catalog/targets/{uuid}", data={
        "_csrf_token": token, "name": "NLC 国家图书馆", "protocol": "z3950", "host": "202.96.31.28", "port": "9991",
        "database": "NLC01", "syntax": "unimarc", "charset": "gb18030", "username": "jx-branch", "password": "",
        "timeout_seconds": "8"})
    row = await CopyTarget.select().where(CopyTarget.uuid == uuid).first()
    assert row["password"] == "s3cret-Pass" and row["name"] == "NLC 国家图书馆" and row["timeout_seconds"] == 8
    assert row["enabled"] is False  # added switched off: no network is assumed


async def test_a_bad_target_form_says_what_is_wrong_and_saves_nothing(client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    token = await form_token(client, "/staff/catalog/targets/")
    response = await client.post("/staff/catalog/targets/", data={
        "_csrf_token": token, "name": "LC", "protocol": "gopher", "host": "http://z3950.loc.gov/x", "port": "99999",
        "syntax": "marc21", "charset": "utf-8", "timeout_seconds": "0"})
    assert response.status_code == 422
    assert response.text.count('class="field-error"') >= 4
    assert await CopyTarget.count() == 0
    await add_target(client, name="LC", host="z3950.loc.gov", port="7090", database="VOYAGER", enabled="")
    token = await form_token(client, "/staff/catalog/targets/")
    again = await client.post("/staff/catalog/targets/", data={
        "_csrf_token": token, "name": "LC", "protocol": "z3950", "host": "lx2.loc.gov", "port": "210",
        "syntax": "marc21", "charset": "utf-8", "timeout_seconds": "5"})
    assert again.status_code == 409 and await CopyTarget.count() == 1


async def test_a_scan_shows_every_catalogues_answer_and_which_failed(client, zebra):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    async with misbehaving("silent") as silent, misbehaving("noise") as noise:
        await add_target(client, **_fields(zebra.cnmarc))
        await add_target(client, **_fields(zebra.marc21))
        await add_target(client, name="Hanging", host="127.0.0.1", port=str(silent), timeout_seconds="1")
        await add_target(client, name="Noisy", host="127.0.0.1", port=str(noise))
        page = await client.get("/staff/catalog/", params={"isbn": ISBN, "wait": "1"})
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "团圆" in text and "余丽琼" in text and "南海出版公司" in text
    assert 'data-copy-failure="source_timeout"' in page.text and "Hanging" in text
    assert 'data-copy-failure="source_garbage"' in page.text and "Noisy" in text
    assert text.count("data-copy-candidate") == 1  # only the Chinese server has this book
    assert "data-copy-none" in page.text  # the MARC21 one answered: nothing


async def test_without_wait_the_page_leaves_a_place_for_each_answer(client, zebra):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    uuid = await add_target(client, **_fields(zebra.cnmarc))
    page = await client.get("/staff/catalog/", params={"isbn": ISBN})
    assert page.status_code == 200
    assert f'data-copy-src="/staff/catalog/copy/answers/{uuid}?isbn={ISBN}"' in page.text
    assert "wait=1" in page.text  # the way without JavaScript
    answer = await client.get(f"/staff/catalog/copy/answers/{uuid}", params={"isbn": ISBN})
    assert answer.status_code == 200 and "团圆" in html.unescape(answer.text) and "data-copy-take" in answer.text


async def test_nothing_enabled_goes_straight_to_the_form_as_before(client):
    await sign_in_staff(client)
    response = await client.get("/staff/catalog/", params={"isbn": ISBN})
    assert response.status_code == 303 and response.headers["location"] == f"/staff/catalog/records/new?isbn={ISBN}"


async def test_a_book_without_an_isbn_is_found_by_title_and_author(client, zebra):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    await add_target(client, **_fields(zebra.marc21))
    page = await client.get("/staff/catalog/copy", params={"title": "wild things", "author": "Sendak", "wait": "1"})
    assert page.status_code == 200 and "Where the wild things are" in page.text


async def test_taking_a_candidate_makes_the_record_with_its_provenance(client, zebra):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    await add_target(client, **_fields(zebra.cnmarc))
    page = await client.get("/staff/catalog/", params={"isbn": ISBN, "wait": "1"})
    form = re.search(r'<form method="post" action="/staff/catalog/copy/take">(.*?)</form>', page.text, re.S).group(1)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    taken = await client.post("/staff/catalog/copy/take", data=fields)
    assert taken.status_code == 303
    uuid = re.search(r"/staff/catalog/records/([0-9a-f-]{36})/edit", taken.headers["location"]).group(1)
    edit = await client.get(taken.headers["location"])
    assert 'value="团圆"' in edit.text and 'value="余丽琼"' in edit.text  # the form, filled by the MARC mapping
    record = await Record.select().where(Record.uuid == uuid).first()
    assert record["marc_format"] == "cnmarc" and record["isbn13"] == ISBN and "团圆" in record["marc"]
    provenance = await RecordProvenance.select().where(RecordProvenance.record == record["id"]).first()
    assert provenance["target_name"] == zebra.cnmarc.name and provenance["taken_by"]
    assert "团圆".encode("gb18030") in bytes(provenance["source_record"])  # as the target sent it
    shown = await client.get(f"/staff/catalog/records/{uuid}")
    assert "data-provenance" in shown.text and zebra.cnmarc.name in shown.text and "团圆" in shown.text
    # Taking it twice is refused, pointing at the record made the first time.
    again = await client.post("/staff/catalog/copy/take", data=fields)
    assert again.status_code == 409 and uuid in again.text


async def test_a_forged_candidate_is_refused(client, zebra):
    """A hostile form that swaps in bytes of its own under a real target's name."""
    await sign_in_staff(client, "admin", "admin-demo-pass")
    uuid = await add_target(client, **_fields(zebra.cnmarc))
    token = await form_token(client, "/staff/catalog/")
    forged = await client.post("/staff/catalog/copy/take", data={
        "_csrf_token": token, "target": uuid, "token": "MDAwMjQ.deadbeef"})
    assert forged.status_code == 422
    assert await Record.count() == 0 and await RecordProvenance.count() == 0


async def test_an_administrator_tries_a_catalogue_and_switches_it_off(client, zebra):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    uuid = await add_target(client, **_fields(zebra.marc21))
    token = await form_token(client, f"/staff/catalog/targets/{uuid}")
    tried = await client.post(f"/staff/catalog/targets/{uuid}/test", data={"_csrf_token": token, "isbn": "0399226907"})
    assert tried.status_code == 200 and "The very hungry caterpillar" in tried.text and "data-target-tried" in tried.text
    await client.post(f"/staff/catalog/targets/{uuid}/enabled", data={"_csrf_token": token, "enabled": "0"})
    assert (await CopyTarget.select(CopyTarget.enabled).where(CopyTarget.uuid == uuid).first())["enabled"] is False
    # Switched off, it is no longer asked: a scan goes to the empty form as before.
    await sign_in_staff(client)
    response = await client.get("/staff/catalog/", params={"isbn": "9780399226908"})
    assert response.status_code == 303 and "/staff/catalog/records/new" in response.headers["location"]
