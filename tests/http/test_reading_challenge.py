"""The reading challenge over HTTP (issue 18, part 6): a guardian logs one book for both
children at once, sees the badge it earned the moment she logs it, finds every challenge from
one page of her account, and prints a certificate with the badges on it."""

import re
from urllib.parse import parse_qs, urlsplit

from library.activities.tables import Programme, ReadingLog
from tests.support import csrf_token_from, sign_in_patron

MIMI, YUYU = "ZX10000002", "ZX10000003"  # 李小米 (5) and 李小宇 (3): a goal of 5 books each


async def winter() -> str:
    return str((await Programme.select(Programme.uuid).first())["uuid"])


async def log(client, programme: str, cards: list[str], title: str, child: str = MIMI):
    page = await client.get(f"/account/challenges/{programme}", params={"card": child})
    return await client.post(f"/account/challenges/{programme}/log", data={
        "_csrf_token": csrf_token_from(page.text), "child": child, "card": cards, "title": title,
        "read_on": "2026-11-28"})


async def test_one_book_for_both_children_and_the_badge_earned_moment(client):
    programme = await winter()
    await sign_in_patron(client)
    page = await client.get(f"/account/challenges/{programme}", params={"card": MIMI})
    assert page.status_code == 200 and "data-readers" in page.text
    assert f'name="card" value="{MIMI}" checked' in page.text and f'name="card" value="{YUYU}" >' in page.text
    assert 'alt="小书虫"' in page.text and 'src="/static/badge-bookworm.svg"' in page.text
    assert "读满 2 本" in page.text  # the Bookworm at 2 of her goal of 5
    assert "data-just-logged" not in page.text
    logged = await log(client, programme, [MIMI, YUYU], "好饿的毛毛虫")
    assert logged.status_code == 303
    query = parse_qs(urlsplit(logged.headers["location"]).query)
    assert query["card"] == [MIMI] and len(query["logged"]) == 2
    moment = await client.get(logged.headers["location"])
    assert "data-just-logged" in moment.text and 'role="status"' in moment.text
    assert f'data-logged="{MIMI}"' in moment.text and f'data-logged="{YUYU}"' in moment.text
    assert "好饿的毛毛虫" in moment.text and "李小宇" in moment.text
    assert f'data-earned="{MIMI}/seedling"' in moment.text and f'data-earned="{YUYU}/seedling"' in moment.text
    assert "获得了徽章" in moment.text and 'alt="小种子"' in moment.text
    # Both children have the book; the moment is not shown again on the next visit.
    sibling = await client.get(f"/account/challenges/{programme}", params={"card": YUYU})
    assert 'data-total="1"' in sibling.text and "好饿的毛毛虫" in sibling.text
    assert "data-just-logged" not in sibling.text
    # The second book for 李小米 alone: the Bookworm (at 2 of 5), and only for her.
    second = await client.get((await log(client, programme, [MIMI], "团圆")).headers["location"])
    assert f'data-earned="{MIMI}/bookworm"' in second.text and "seedling" not in second.text.split("data-just-logged")[1].split("</section>")[0]
    assert await ReadingLog.count() == 3


async def test_a_card_that_is_not_hers_logs_nothing(client):
    """A hostile guardian adds a stranger's card to the form: refused, and her own child gets nothing either."""
    programme = await winter()
    await sign_in_patron(client)
    refused = await log(client, programme, [MIMI, "JX20000001"], "好饿的毛毛虫")
    assert refused.status_code == 403
    assert await ReadingLog.count() == 0


async def test_the_page_after_logging_shows_nothing_of_another_familys_log(client):
    programme = await winter()
    await sign_in_patron(client)
    location = (await log(client, programme, [MIMI], "好饿的毛毛虫")).headers["location"]
    theirs = parse_qs(urlsplit(location).query)["logged"][0]
    await client.post("/signout", data={"_csrf_token": csrf_token_from((await client.get("/account")).text)})
    await sign_in_patron(client, "JX20000001")
    own = await client.get(f"/account/challenges/{programme}", params={"card": "JX20000001", "logged": theirs})
    assert own.status_code == 200 and "data-just-logged" not in own.text and "好饿的毛毛虫" not in own.text


async def test_every_challenge_of_the_family_on_one_page_in_both_languages(client):
    programme = await winter()
    await sign_in_patron(client)
    await log(client, programme, [YUYU], "团圆", child=YUYU)
    mine = await client.get("/account/challenges")
    assert mine.status_code == 200 and f'data-programme="{programme}"' in mine.text and "寒假阅读挑战" in mine.text
    for card in ("ZX10000001", MIMI, YUYU):
        assert f'href="/account/challenges/{programme}?card={card}"' in mine.text
    assert re.search(rf'data-member="{YUYU}".*?data-total="1".*?alt="小种子"', mine.text, re.S)
    await client.get("/language", params={"lang": "en", "next": "/"})
    english = await client.get("/account/challenges")
    assert "Winter reading challenge" in english.text and 'alt="Seedling"' in english.text
    ladder = await client.get(f"/account/challenges/{programme}", params={"card": MIMI})
    assert "at 1 book<" in ladder.text and "at 2 books" in ladder.text and 'alt="Bookworm"' in ladder.text
    assert "寒假阅读挑战" not in english.text


async def test_the_certificate_prints_the_name_and_the_badges(client):
    programme = await winter()
    await sign_in_patron(client)
    for title in ("团圆", "好饿的毛毛虫", "猜猜我有多爱你", "小蓝和小黄", "月亮，生日快乐"):
        await log(client, programme, [YUYU], title, child=YUYU)
    done = await client.get(f"/account/challenges/{programme}", params={"card": YUYU})
    assert "data-certificate" in done.text
    certificate = await client.get(f"/account/challenges/{programme}/certificate", params={"card": YUYU})
    assert certificate.status_code == 200 and "李小宇" in certificate.text and "data-print" in certificate.text
    shown = re.findall(r'<li data-badge="(\w+)"><img src="/static/badge-\w+\.svg" alt="([^"]+)"', certificate.text)
    assert shown == [("seedling", "小种子"), ("bookworm", "小书虫"), ("explorer", "故事探险家"), ("star", "阅读之星")]
    css = (await client.get("/static/library.css")).text
    printed = css[css.rindex("@media print"):]
    assert "@page" in printed and "body.certificate main" in printed and "print-color-adjust: exact" in printed
    picture = await client.get("/static/badge-star.svg")
    assert picture.status_code == 200 and picture.headers["content-type"].startswith("image/svg+xml")
    assert "<title" in picture.text and "阅读之星 Reading star" in picture.text


async def test_staff_have_no_family_page(client):
    from tests.support import sign_in_staff

    await sign_in_staff(client)
    response = await client.get("/account/challenges")
    assert response.status_code == 403
