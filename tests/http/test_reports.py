"""/staff/reports: the statistics page, its downloads and the annual return, over the demo
world; who may see what; and the small-count rule on the page itself."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid

import openpyxl

from library.accounts.tables import Patron
from library.branches.tables import Branch
from library.catalog.tables import Item, Record
from library.loans.tables import Loan
from tests.support import sign_in_patron, sign_in_staff


async def _lend_children(count: int) -> None:
    """`count` loans to one child at ZX on 27 November 2026, beside whatever the demo lent."""
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    child = await Patron.select(Patron.id).where(Patron.category == "child").first()
    record = (await Record.insert(Record(title="小熊很忙")).returning(Record.id))[0]["id"]
    items = [(await Item.insert(Item(record=record, barcode=f"RPT{n}", home_branch=branch["id"],
                                     current_branch=branch["id"], status="on_loan")).returning(Item.id))[0]
             for n in range(count)]
    at = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.timezone.utc)
    for item in items:
        await Loan.insert(Loan(uuid=uuid.uuid4(), item=item["id"], patron=child["id"], patron_category="child",
                               branch=branch["id"], checked_out_at=at, due_on=dt.date(2026, 12, 25),
                               due_at=at + dt.timedelta(days=28)))


async def test_a_reader_or_a_visitor_cannot_see_statistics(client):
    anonymous = await client.get("/staff/reports/", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401)
    await sign_in_patron(client)
    assert (await client.get("/staff/reports/")).status_code == 403


async def test_the_page_shows_charts_tables_and_the_small_count_rule(client):
    await _lend_children(2)
    await sign_in_staff(client)
    page = await client.get("/staff/reports/?period=month&at=2026-11", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.text
    assert text.count('<svg class="chart"') >= 5 and 'role="img"' in text and "<desc" in text
    assert 'data-measure="loans"' in text and 'class="report-series"' in text
    assert 'data-rule="small-counts"' in text
    # Two loans to children at ZX that day: a breakdown cell of 2 is not shown as 2.
    loans = re.search(r'data-breakdown="loans".*?</table>', text, re.S).group(0)
    assert "&lt;5" in loans
    # Staff read the page in their own language (the demo's: Chinese).
    assert 'data-value="volunteer_hours"' in text and "志愿服务时长" in text and "<h1>统计</h1>" in text


async def test_a_bad_period_is_refused_with_a_message(client):
    await sign_in_staff(client)
    answer = await client.get("/staff/reports/?period=month&at=2026-13", headers={"Accept-Language": "en"})
    assert answer.status_code == 422 and "请选择年份" in answer.text


async def test_the_csv_and_xlsx_hold_the_page_s_numbers(client):
    await _lend_children(2)
    await sign_in_staff(client)
    answer = await client.get("/staff/reports/statistics.csv?period=month&at=2026-11&branch=ZX",
                              headers={"Accept-Language": "en"})
    assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert rows[0] == ["指标", "时段", "分类", "数值"]
    day = [row for row in rows if row[0] == "外借册次" and row[1] == "2026-11-27"]
    assert day and int(float(day[0][3])) >= 2
    assert ["志愿服务时长", "2026-11", "", "0.0"] in rows  # no shift checked out in the demo
    book = await client.get("/staff/reports/statistics.xlsx?period=month&at=2026-11&branch=ZX",
                            headers={"Accept-Language": "en"})
    sheet = openpyxl.load_workbook(io.BytesIO(book.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == ["指标", "时段", "分类", "数值"]
    assert [row for row in values if row[0] == "外借册次" and row[1] == "2026-11-27"][0][3] == int(float(day[0][3]))
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)


async def test_the_annual_return_page_and_download(client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    page = await client.get("/staff/reports/annual?year=2026")
    assert page.status_code == 200
    for label in ("持证读者数", "新增读者", "外借册次", "举办活动场次", "活动参与人次", "志愿服务时长"):
        assert label in page.text
    holders = await Patron.count()
    assert re.search(rf"持证读者数</th><td>{holders}</td>", page.text) or "持证读者数" in page.text
    download = await client.get("/staff/reports/annual.csv?year=2026", headers={"Accept-Language": "en"})
    rows = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert rows[0] == ["项目", "2026"] and rows[-1] == ["志愿服务时长", "0.0"]


async def test_a_librarian_is_refused_another_branch_s_figures(client):
    await sign_in_staff(client)
    codes = [row["code"] for row in await Branch.select(Branch.code)]
    other = [code for code in codes if code != "ZX"]
    if other:
        answer = await client.get(f"/staff/reports/?branch={other[0]}")
        assert answer.status_code == 422


async def test_the_year_and_the_day_views_and_the_staff_desk_link(client):
    await _lend_children(6)
    await sign_in_staff(client)
    assert 'href="/staff/reports/"' in (await client.get("/staff/")).text
    year = await client.get("/staff/reports/?period=year&at=2026&branch=ZX")
    # Six loans to children on 27 November: shown, not hidden (6 is not a small count).
    assert re.search(r'data-total="loans">\d+<', year.text)
    assert "<th scope=\"row\">2026-11</th>" in year.text
    loans = re.search(r'data-breakdown="loans".*?</table>', year.text, re.S).group(0)
    assert "<td>6</td>" in loans and "&lt;5" not in loans
    day = await client.get("/staff/reports/?period=day&at=2026-11-27&branch=ZX")
    assert day.status_code == 200 and '<svg class="chart"' not in day.text
    assert re.search(r'data-total="loans">(\d+)<', day.text).group(1) == "6"
