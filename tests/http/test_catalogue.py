"""Catalogue pages and API over HTTP."""

import pymarc
import pytest

from tests.marc_samples import iso2709, marc21
from tests.marc_specimens import marc21_specimen
from tests.support import form_token, sign_in_patron, sign_in_staff


async def csrf_header(client) -> dict[str, str]:
    await client.get("/")
    return {"X-CSRFToken": client.cookies["library_csrf"]}


async def staff_api(client) -> dict[str, str]:
    headers = await csrf_header(client)
    await client.post("/api/session", json={"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
                      headers=headers)
    return await csrf_header(client)  # signing in changed the session, and so the token


async def test_isbn_lookup_explains_a_bad_check_digit(client):
    response = await client.get("/api/catalog/isbn/9787533278261", headers={"Accept-Language": "en"})
    assert response.status_code == 422
    assert response.json()["detail"] == "The check digit is wrong: it should be 7. Check the number on the book."


async def test_isbn_lookup_offers_metadata_from_the_local_provider(client):
    answer = (await client.get("/api/catalog/isbn/7533278267")).json()
    assert answer["hyphenated"] == "978-7-5332-7826-7" and answer["record"] is None
    assert answer["metadata"]["title"] == "好饿的毛毛虫" and answer["metadata"]["source"] == "local"


async def test_unknown_isbn_gives_an_empty_form_not_an_error(client):
    await sign_in_staff(client)
    page = await client.get("/staff/catalog/records/new", params={"isbn": "9780060254926"})
    assert page.status_code == 200 and 'data-source="none"' in page.text
    assert 'value="978-0-06-025492-6"' in page.text


async def test_create_search_add_copies_withdraw_through_the_api(client):
    headers = await staff_api(client)
    created = await client.post("/api/records", headers=headers, json={
        "title": "猜猜我有多爱你", "isbn": "9787533259594", "contributors": [{"name": "山姆·麦克布雷尼"}],
        "age_min": 3, "age_max": 6, "clc": "I561.85"})
    assert created.status_code == 201, created.text
    uuid = created.json()["uuid"]
    assert created.json()["call_number"] == "I561.85/SMMK"
    barcodes = (await client.post(f"/api/records/{uuid}/items", headers=headers,
                                  json={"branch": "ZX", "count": 2, "shelf_location": "邻乐空间"})).json()
    assert len(barcodes) == 2
    found = (await client.get("/api/records", params={"q": "cc wyddan"})).json()
    assert found["total"] == 0  # initials are one token: a prefix of it matches, not pieces
    found = (await client.get("/api/records", params={"q": "ccwyd"})).json()
    assert [hit["uuid"] for hit in found["hits"]] == [uuid]
    assert found["hits"][0]["holdings"][0]["available"] == 2
    withdrawn = await client.post(f"/api/items/{barcodes[0]}/withdraw", headers=headers, json={"reason": "破损"})
    assert withdrawn.status_code == 204
    record = (await client.get(f"/api/records/{uuid}")).json()
    assert record["holdings"][0]["copies"] == 1
    duplicate = await client.post("/api/records", headers=headers, json={"title": "猜猜我有多爱你", "isbn": "7533259599"})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "record_exists"
    # The same ISBN on another book (a reused ISBN): catalogued, and flagged for a librarian.
    reused = await client.post("/api/records", headers=headers, json={"title": "另一本书", "isbn": "7533259599"})
    assert reused.status_code == 201, reused.text
    assert reused.json()["uuid"] != uuid


async def test_a_record_without_a_title_lists_every_problem(client):
    headers = await staff_api(client)
    response = await client.post("/api/records", headers=headers, json={"title": "", "age_min": 9, "age_max": 2})
    assert response.status_code == 422  # in the librarian's own language (her account says zh_CN)
    assert response.json()["detail"] == "此项为必填项。 最小年龄不能大于最大年龄。"


async def test_titles_are_shown_escaped(client):
    headers = await staff_api(client)
    uuid = (await client.post("/api/records", headers=headers,
                              json={"title": "<script>alert(1)</script>绘本"})).json()["uuid"]
    page = await client.get(f"/catalog/records/{uuid}")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;绘本" in page.text
    search = await client.get("/catalog", params={"q": "绘本"})
    assert "&lt;script&gt;" in search.text and "<script>alert" not in search.text


async def test_search_page_filters_and_empty_fields(client):
    page = await client.get("/catalog", params={"q": "", "age": "", "format": "", "branch": "", "sort": "relevance"})
    assert page.status_code == 200


async def test_a_reader_cannot_catalogue(client):
    headers = await csrf_header(client)
    await client.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "123456"},
                      headers=headers)
    headers = await csrf_header(client)  # signing in changed the session, and so the token
    response = await client.post("/api/records", headers=headers, json={"title": "x"})
    assert response.status_code == 403
    assert (await client.get("/staff/catalog/")).status_code == 403


async def test_import_page_reports_skips_and_export_downloads(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/catalog/exchange")
    data = iso2709(marc21("第一本", control="P1"), marc21("", control="P2"))
    response = await client.post("/staff/catalog/exchange", data={"_csrf_token": token, "flavour": "auto"},
                                 files={"file": ("books.mrc", data, "application/marc")})
    assert response.status_code == 200
    assert "新增 1 条" in response.text and "第 2 条记录" in response.text
    exported = await client.get("/staff/catalog/export", params={"format": "marc21"})
    assert exported.status_code == 200 and exported.headers["content-disposition"].endswith('.mrc"')
    assert b"\xe7\xac\xac\xe4\xb8\x80\xe6\x9c\xac" in exported.content  # 第一本
    cnmarc = await client.get("/staff/catalog/export", params={"format": "cnmarc", "encoding": "gb18030"})
    assert cnmarc.status_code == 200 and "第一本".encode("gb18030") in cnmarc.content
    assert cnmarc.headers["content-disposition"] == 'attachment; filename="catalog-gb18030-cnmarc.mrc"'
    # Refused before the download starts (not a 200 that breaks off), the name never echoed.
    unknown = await client.get("/staff/catalog/export", params={"format": "marc21", "branch": 'NOPE"; x=.exe'})
    assert unknown.status_code == 404 and "content-disposition" not in unknown.headers
    assert (await client.get("/staff/catalog/export", params={"format": "marc21", "encoding": "gb18030"})).status_code == 422


async def test_a_file_that_is_not_marc_is_explained(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/catalog/exchange")
    response = await client.post("/staff/catalog/exchange", data={"_csrf_token": token},
                                 files={"file": ("photo.jpg", b"\xff\xd8\xff\xe0 not marc", "image/jpeg")})
    assert response.status_code == 422 and "该文件不是 MARC 格式" in response.text


async def test_a_200_mb_upload_is_refused_before_it_is_read(client):
    headers = await staff_api(client)
    body = b"0" * (101 * 1024 * 1024)
    response = await client.post("/api/catalog/import", headers={**headers, "Content-Type": "application/marc"},
                                 content=body)
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/api/records/not-a-uuid", "/catalog/records/00000000-0000-0000-0000-000000000000"])
async def test_unknown_records(client, path):
    response = await client.get(path)
    assert response.status_code in (404, 400)


async def test_a_copy_by_its_barcode_and_a_cover_upload(client):
    headers = await staff_api(client)
    uuid = (await client.post("/api/records", headers=headers, json={"title": "团圆", "isbn": "9787202026458"})).json()["uuid"]
    [barcode] = (await client.post(f"/api/records/{uuid}/items", headers=headers, json={"branch": "ZX"})).json()
    item = (await client.get(f"/api/items/{barcode.lower()}")).json()
    assert (item["title"], item["current_branch"], item["status"]) == ("团圆", "ZX", "available")
    assert (await client.get("/api/items/NOPE123")).status_code == 404

    token = await form_token(client, f"/staff/catalog/records/{uuid}/edit")
    form = {"_csrf_token": token, "title": "团圆", "isbn": "9787202026458"}
    not_image = await client.post(f"/staff/catalog/records/{uuid}/edit", data=form,
                                  files={"cover": ("x.png", b"<svg onload=alert(1)>", "image/png")})
    assert not_image.status_code == 422 and "封面须为 JPEG、PNG 或 WebP 图片" in not_image.text
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    saved = await client.post(f"/staff/catalog/records/{uuid}/edit", data=form, files={"cover": ("c.png", png, "image/png")})
    assert saved.status_code == 303
    record = (await client.get(f"/api/records/{uuid}")).json()
    assert record["cover"] == f"{uuid}.png"
    assert (await client.get(f"/covers/{uuid}.png")).content == png


async def test_a_records_marc_page_shows_what_came_in_and_what_goes_out(client):
    """The MARC page: source, the record as it came in (880 and all), as it goes out, downloads."""
    await sign_in_staff(client)
    token = await form_token(client, "/staff/catalog/exchange")
    imported = await client.post("/staff/catalog/exchange", data={"_csrf_token": token},
                                 files={"file": ("lc.mrc", marc21_specimen(5).as_marc(), "application/marc")})
    assert imported.status_code in (200, 303), imported.text
    found = (await client.get("/api/records", params={"q": "caterpillar"})).json()
    uuid = found["hits"][0]["uuid"]
    client.cookies.set("lang", "en")  # the librarian's account says zh_CN; her choice wins
    page = await client.get(f"/staff/catalog/records/{uuid}/marc")
    assert page.status_code == 200
    assert "Came in as MARC21" in page.text and "好饿的毛毛虫 5 /" in page.text  # the 880
    assert "Every field as it came in" in page.text
    cn = await client.get(f"/staff/catalog/records/{uuid}/marc", params={"format": "cnmarc"})
    assert cn.status_code == 200 and ">200<" in cn.text
    download = await client.get(f"/staff/catalog/records/{uuid}/marc/file", params={"format": "marc21"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/marc")
    record = next(pymarc.MARCReader(download.content, to_unicode=True, force_utf8=True))
    assert record["505"]["a"] == "Monday -- Tuesday -- Saturday."
    gb = await client.get(f"/staff/catalog/records/{uuid}/marc/file", params={"format": "cnmarc", "encoding": "gb18030"})
    assert gb.status_code == 200 and "毛毛虫".encode("gb18030") in gb.content
    refused = await client.get(f"/staff/catalog/records/{uuid}/marc/file", params={"format": "marc21", "encoding": "gb18030"})
    assert refused.status_code == 422


async def test_a_reader_cannot_see_a_records_marc_page(client):
    await sign_in_patron(client)
    response = await client.get("/staff/catalog/records/00000000-0000-0000-0000-000000000000/marc")
    assert response.status_code in (302, 303, 403)


async def test_a_reused_isbn_at_the_desk_asks_which_book_and_a_second_copy_of_a_book_points_at_it(client):
    """A Chinese publisher reused 978-7-5332-5959-4 for a second title. Scanning it lists both
    records; cataloguing the same book again is refused with a link to the record it already is."""
    headers = await staff_api(client)
    first = (await client.post("/api/records", headers=headers, json={"title": "猜猜我有多爱你", "isbn": "9787533259594"})).json()
    second = (await client.post("/api/records", headers=headers, json={"title": "月亮，晚安", "isbn": "9787533259594"})).json()
    answer = (await client.get("/api/catalog/isbn/9787533259594", params={"lookup": "false"})).json()
    assert [r["uuid"] for r in answer["records"]] == [first["uuid"], second["uuid"]]
    await sign_in_staff(client)
    scanned = await client.get("/staff/catalog/", params={"isbn": "7533259599"})
    assert scanned.status_code == 200 and "data-isbn-records" in scanned.text
    assert f'/staff/catalog/records/{first["uuid"]}?scanned=1' in scanned.text and "月亮，晚安" in scanned.text
    assert "/staff/catalog/records/new?isbn=9787533259594" in scanned.text  # a third book, if it is one
    token = await form_token(client, "/staff/catalog/records/new")
    again = await client.post("/staff/catalog/records/new", data={
        "_csrf_token": token, "title": "猜猜我有多爱你", "isbn": "978-7-5332-5959-4", "language": "chi",
        "format": "picture_book"})
    assert again.status_code == 409
    assert f'href="/staff/catalog/records/{first["uuid"]}?scanned=1" data-existing-record' in again.text


async def test_the_search_box_s_examples_find_books_in_the_demo(client):
    """Issue 18, part 9: a new user who types what the search box suggests (a traditional-character
    title, pinyin, initials) finds a book in the demo, not nothing."""
    import datetime as dt
    import re

    from library.demo import load_demo

    await load_demo(dt.date(2026, 11, 28))  # with its books this time
    page = await client.get("/catalog")
    examples = [example.strip() for example in
                re.search(r'name="q"[^>]*placeholder="([^"]+)"', page.text).group(1).split("/")]
    assert len(examples) == 3
    for example in examples:
        found = await client.get("/catalog", params={"q": example})
        assert found.status_code == 200 and 'href="/catalog/records/' in found.text, example


async def test_a_broad_search_says_there_are_more_than_it_shows(client, monkeypatch):
    """PostgreSQL counts at most search.COUNT_UP_TO matches (issue 20): the API says `more`, the page
    says "more than" in the reader's language, and asks them to narrow it. SQLite counts them all."""
    import datetime as dt

    from library.catalog import search
    from library.catalog.service import RecordInput, create_record
    from library.db import is_sqlite

    monkeypatch.setattr(search, "COUNT_UP_TO", 2)
    for n in range(3):
        await create_record(RecordInput(title=f"Zeppelin voyage {n}"), "test", dt.date(2026, 11, 28))
    answer = (await client.get("/api/records", params={"q": "zeppelin"})).json()
    page = await client.get("/catalog", params={"q": "zeppelin"}, headers={"Accept-Language": "zh-CN"})
    if is_sqlite():
        assert answer["total"] == 3 and answer["more"] is False and "超过" not in page.text
        return
    assert answer["total"] == 2 and answer["more"] is True and len(answer["hits"]) == 2
    assert "找到超过 2 本书" in page.text
