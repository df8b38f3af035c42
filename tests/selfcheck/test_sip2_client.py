"""Every SIP2 message this server answers, asked by a client library we did not write (Sip2 1.1
from PyPI) over a real socket, from a UTF-8 machine and from a GB18030 one."""

from __future__ import annotations

import datetime as dt

import pytest
import pytest_asyncio

from library.accounts.tables import Patron
from library.branches.tables import AuditEntry
from library.catalog.tables import Item
from library.clock import set_clock
from library.errors import NotFound
from library.loans.tables import Hold, Loan
from library.selfcheck.service import set_kiosk_enabled
from library.selfcheck.tables import KioskLoginFailure
from tests.selfcheck.conftest import KIOSKS, PASSWORD
from tests.selfcheck.machine import Machine, first, said, screen

pytestmark = pytest.mark.asyncio(loop_scope="module")

CATERPILLAR = "9787533259594"  # 猜猜我有多爱你: 2 copies at ZX (one lent to 王芳), 3 at JX
DAVID = "9787539109619"  # 大卫，不可以: 2 copies of JX, both lent; 张建国 waits for one at JX
WANG_FANG = "ZX10000001"  # adult, zh_CN, two loans
BLOCKED = "ZX10000004"  # 陈静, a lost book not paid for
EMMA = "XZ30000001"  # English, card expired


# One machine of each encoding for the module, logged in once, as a machine in the room stays.
@pytest_asyncio.fixture(scope="module", loop_scope="module", params=sorted(KIOSKS), ids=lambda login: KIOSKS[login])
async def machine(request, world):
    login = request.param
    machine = await Machine(world.port, KIOSKS[login]).connect()
    answer = await machine.login(login, PASSWORD)
    assert answer["fixed"]["Ok"] == "1"
    yield machine
    machine.close()


async def copy(isbn: str, home: str, status: str = "available") -> str:
    row = await Item.select(Item.barcode).where((Item.record.isbn13 == isbn) & (Item.home_branch.code == home)
                                               & (Item.status == status)).order_by(Item.barcode).first()
    assert row is not None, (isbn, home, status)
    return row["barcode"]


async def title(isbn: str) -> str:
    return (await Item.select(Item.record.title).where(Item.record.isbn13 == isbn).first())["record.title"]


async def loan_of(card: str, isbn: str) -> str:
    row = await Loan.select(Loan.item.barcode).where(
        (Loan.patron.card_number == card) & (Loan.item.record.isbn13 == isbn) & Loan.returned_at.is_null()).first()
    return row["item.barcode"]


async def test_login_then_status_describes_the_branch(machine):
    answer = await machine.ask("sc_status")
    fixed = answer["fixed"]
    assert machine.last_raw.startswith("98YYYYNN030003")
    assert fixed["OnlineStatus"] == "Y" and machine.last_raw[32:36] == "2.00"
    assert first(answer, "AO") == "ZX" and first(answer, "AM") == "振兴社区智慧书房"
    # 23 checkout 09 ... : patron status, checkout, checkin, no block, status, resend, login, patron
    # information, end session, no fee paid, item information, no item status update, no patron
    # enable, hold, renew, renew all.
    assert first(answer, "BX") == "YYYNYYYYYNYNNYYY" and first(answer, "AN") == "一楼自助借还"


async def test_each_answer_carries_the_requests_sequence_number(machine):
    for _ in range(3):
        await machine.ask("sc_status")
        assert f"AY{machine.client._seq}AZ" in machine.last_raw


async def test_patron_status_in_the_readers_language(machine):
    machine.reader(WANG_FANG)
    answer = await machine.ask("patron_status")
    assert answer["fixed"]["PatronStatus"] == " " * 14 and answer["fixed"]["Language"] == "019"
    assert first(answer, "AE") == "王芳" and first(answer, "BL") == "Y" and first(answer, "CQ") == "Y"

    machine.reader(EMMA)
    answer = await machine.ask("patron_status")
    # An expired card: no borrowing, renewing, recalls or holds; said in English, her language.
    assert answer["fixed"]["PatronStatus"] == "YYYY" + " " * 10 and answer["fixed"]["Language"] == "001"
    assert any(message.startswith("The card expired on") for message in screen(answer))


async def test_a_wrong_pin_or_an_unknown_card(machine):
    machine.reader(WANG_FANG, "999999")
    answer = await machine.ask("patron_status")
    assert first(answer, "BL") == "Y" and first(answer, "CQ") == "N" and first(answer, "AE") == ""
    machine.reader("ZX99999999")
    answer = await machine.ask("patron_status")
    assert first(answer, "BL") == "N" and screen(answer) == [said("patron_not_found", card_number="ZX99999999")]


@pytest.mark.parametrize("kind", ["charged", "overdue", "hold", "unavail"])
async def test_patron_information_lists(machine, kind):
    machine.reader(WANG_FANG)
    answer = await machine.ask("patron_information", kind, "1", "10")
    fixed = answer["fixed"]
    lent = sorted(row["item.barcode"] for row in await Loan.select(Loan.item.barcode).where(
        (Loan.patron.card_number == WANG_FANG) & Loan.returned_at.is_null()))
    assert lent and fixed["ChargedItemsCount"] == f"{len(lent):04d}" and fixed["OverdueItemsCount"] == "0000"
    assert fixed["HoldItemsCount"] == "0000" and fixed["UnavailableHoldsCount"] == "0000"
    assert first(answer, "AE") == "王芳" and first(answer, "CB") == "0010"
    charged = answer["variable"].get("AU", [])
    assert sorted(charged) == (lent if kind == "charged" else [])
    assert not answer["variable"].get("AT") and not answer["variable"].get("AS")


async def test_patron_information_of_a_reader_with_a_hold(machine):
    machine.reader("JX20000001")
    answer = await machine.ask("patron_information", "unavail")
    assert answer["fixed"]["UnavailableHoldsCount"] == "0001"
    assert answer["variable"]["CD"] == [await title(DAVID)]


async def test_checkout_then_checkin_on_the_shelf(machine):
    barcode = await copy(CATERPILLAR, "ZX")
    machine.reader(WANG_FANG)
    lent = await machine.ask("checkout", barcode)
    assert lent["fixed"]["Ok"] == "1" and lent["fixed"]["Desensitize"] == "Y", screen(lent)
    assert first(lent, "AB") == barcode and first(lent, "AJ") == await title(CATERPILLAR)
    due = (await Item.select(Item.due_back).where(Item.barcode == barcode).first())["due_back"]
    assert first(lent, "AH") == due.strftime("%Y%m%d    235959")
    assert screen(lent)[0].startswith(f"已借：{await title(CATERPILLAR)}")

    back = await machine.ask("checkin", barcode)
    fixed = back["fixed"]
    assert (fixed["Ok"], fixed["Resensitize"], fixed["Alert"]) == ("1", "Y", "N"), screen(back)
    assert first(back, "AQ") == "ZX" and "CV" not in back["variable"] and "CT" not in back["variable"]
    assert screen(back)[0].startswith("已归还")
    assert (await Item.select(Item.status).where(Item.barcode == barcode).first())["status"] == "available"


async def test_checkout_refused_with_every_reason_in_the_readers_language(machine):
    machine.reader(BLOCKED)
    barcode = await copy(CATERPILLAR, "ZX")
    refused = await machine.ask("checkout", barcode)
    assert refused["fixed"]["Ok"] == "0" and refused["fixed"]["Desensitize"] == "N"
    assert screen(refused) == [said("card_blocked", reason="遗失图书尚未赔偿")]

    machine.reader(EMMA)
    lent_copy = await loan_of(WANG_FANG, CATERPILLAR)
    refused = await machine.ask("checkout", lent_copy)
    assert refused["fixed"]["Ok"] == "0"
    # Both reasons, each a screen message, in English (Emma's language).
    assert len(screen(refused)) == 2 and screen(refused)[0].startswith("The card expired on")
    assert screen(refused)[1] == "This copy is already on loan; return it first."
    assert await Loan.count().where(Loan.patron.card_number == EMMA) == 0


async def test_checkin_elsewhere_sends_the_copy_home(machine):
    barcode = await copy(CATERPILLAR, "JX")
    machine.reader(WANG_FANG)
    assert (await machine.ask("checkout", barcode))["fixed"]["Ok"] == "1"
    back = await machine.ask("checkin", barcode)
    assert (back["fixed"]["Ok"], back["fixed"]["Alert"]) == ("1", "Y")
    assert first(back, "CV") == "04" and first(back, "CT") == "JX" and first(back, "AQ") == "JX"
    assert "嘉兴市图书馆" in screen(back)[0]


async def test_checkin_traps_a_copy_for_the_reader_waiting(world):
    # Once: the copy that comes back goes to 张建国's hold, at the central library.
    machine = await Machine(world.port, "gb18030").connect()
    await machine.login("zx-rfid-gbk", PASSWORD)
    barcode = await loan_of(WANG_FANG, DAVID)
    back = await machine.ask("checkin", barcode)
    assert (back["fixed"]["Ok"], back["fixed"]["Resensitize"], back["fixed"]["Alert"]) == ("1", "Y", "Y")
    assert first(back, "CV") == "02" and first(back, "CT") == "JX"
    assert first(back, "CY") == "JX20000001" and first(back, "DA") == "张建国"
    hold = await Hold.select(Hold.status).where(Hold.patron.card_number == "JX20000001").first()
    assert hold["status"] == "in_transit"
    machine.close()


async def test_renew_one_and_all(machine):
    # Some days on (a renewal the day after a loan would not move its due date), further for the
    # second machine than for the first.
    days = 10 if machine.encoding == "gb18030" else 20
    set_clock(lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days))
    try:
        machine.reader(WANG_FANG)
        barcode = await loan_of(WANG_FANG, CATERPILLAR)
        before = (await Item.select(Item.due_back).where(Item.barcode == barcode).first())["due_back"]
        renewed = await machine.ask("renew", barcode)
        assert renewed["fixed"]["Ok"] == "1" and renewed["fixed"]["RenewalOk"] == "Y", screen(renewed)
        after = (await Item.select(Item.due_back).where(Item.barcode == barcode).first())["due_back"]
        assert after > before and first(renewed, "AH") == after.strftime("%Y%m%d    235959")
        assert screen(renewed)[0].startswith("已续借")

        # Renewed again at once: it would not move the due date; refused with that reason.
        again = await machine.ask("renew", barcode)
        assert again["fixed"]["Ok"] == "0" and again["fixed"]["RenewalOk"] == "N"
        assert f"现在续借不会使应还日期晚于 {format_date_zh(after)}。" in screen(again)

        everything = await machine.ask("renew_all")
        assert everything["fixed"]["Ok"] == "1"
        renewed_items = everything["variable"].get("BM", [])
        unrenewed = everything["variable"].get("BN", [])
        assert int(everything["fixed"]["RenewedItems"]) == len(renewed_items) == 0
        assert int(everything["fixed"]["UnrenewedItems"]) == len(unrenewed)
        assert barcode in unrenewed and len(screen(everything)) >= 2
    finally:
        set_clock(None)


def format_date_zh(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


async def test_item_information(machine):
    barcode = await loan_of(WANG_FANG, CATERPILLAR)
    answer = await machine.ask("item_information", barcode)
    assert answer["fixed"]["CirculationStatus"] == "04" and answer["fixed"]["SecurityMarker"] == "00"
    assert first(answer, "AB") == barcode and first(answer, "AJ") == await title(CATERPILLAR)
    assert first(answer, "AQ") == "ZX" and first(answer, "AP") == "ZX" and first(answer, "CF") == "00000"
    due = (await Item.select(Item.due_back).where(Item.barcode == barcode).first())["due_back"]
    assert first(answer, "AH") == due.strftime("%Y%m%d    235959")

    shelf = await copy(CATERPILLAR, "ZX")
    assert (await machine.ask("item_information", shelf))["fixed"]["CirculationStatus"] == "03"
    unknown = await machine.ask("item_information", "NO-SUCH-COPY")
    assert unknown["fixed"]["CirculationStatus"] == "01"
    assert screen(unknown) == [said("item_not_found", barcode="NO-SUCH-COPY")]


async def test_place_and_cancel_a_hold(machine):
    machine.reader(WANG_FANG)
    barcode = await copy("9787543464650", "XZ")
    placed = await machine.ask("hold", "+", itemIdentifier=barcode)
    # The library reads the Hold answer as if its expiration date were fixed; the fields from 22 on:
    variable = machine.client._response_parse_varData(machine.last_raw, 22)
    assert placed["fixed"]["Ok"] == "1", variable.get("AF")
    assert variable["BR"] == ["1"] and variable["BS"] == ["ZX"] and variable["AB"] == [barcode]
    assert await Hold.count().where((Hold.patron.card_number == WANG_FANG) & (Hold.status == "waiting")) == 1

    twice = await machine.ask("hold", "+", itemIdentifier=barcode)
    variable = machine.client._response_parse_varData(machine.last_raw, 22)
    assert twice["fixed"]["Ok"] == "0" and variable["AF"] == [said("hold_exists")]

    cancelled = await machine.ask("hold", "-", itemIdentifier=barcode)
    variable = machine.client._response_parse_varData(machine.last_raw, 22)
    assert cancelled["fixed"]["Ok"] == "1", variable.get("AF")
    assert await Hold.count().where((Hold.patron.card_number == WANG_FANG) & (Hold.status == "waiting")) == 0


async def test_end_session(machine):
    machine.reader(WANG_FANG)
    answer = await machine.ask("end_patron_session")
    assert answer["fixed"]["EndSession"] == "Y" and first(answer, "AA") == WANG_FANG
    assert screen(answer) == ["感谢光临，再见！"]


async def test_resend_repeats_the_last_answer(machine):
    status = await machine.ask("sc_status")
    first_answer = machine.last_raw
    assert await machine.send(machine.client.sip_sc_resend_request()) == first_answer
    assert status["fixed"]["OnlineStatus"] == "Y"


async def test_a_pin_is_needed_to_borrow(machine):
    barcode = await copy(CATERPILLAR, "ZX")
    machine.reader(WANG_FANG, None)
    refused = await machine.ask("checkout", barcode)
    assert refused["fixed"]["Ok"] == "0" and screen(refused) == ["请先输入密码。"]
    machine.reader(WANG_FANG, "000000")
    refused = await machine.ask("checkout", barcode)
    assert refused["fixed"]["Ok"] == "0" and screen(refused) == [said("bad_credentials")]
    assert (await Item.select(Item.status).where(Item.barcode == barcode).first())["status"] == "available"


async def test_a_return_slot_may_only_take_returns(world):
    slot = await Machine(world.port).connect()
    assert (await slot.login("zx-return-slot", PASSWORD))["fixed"]["Ok"] == "1"
    status = await slot.ask("sc_status")
    assert first(status, "BX") == "NNYNYYYNYNYNNNNN" and status["fixed"]["CheckoutOk"] == "N"
    slot.reader(WANG_FANG)
    refused = await slot.ask("checkout", await copy(CATERPILLAR, "ZX"))
    # Said in the reader's language (her card says Chinese), not the slot's English.
    assert refused["fixed"]["Ok"] == "0" and screen(refused) == ["本机不能办理此项业务，请到服务台办理。"]
    slot.close()


async def test_wrong_kiosk_passwords_are_refused_throttled_and_logged(world):
    machine = await Machine(world.port).connect()
    for _ in range(5):
        assert (await machine.login("zx-rfid-utf8", "wrong-password"))["fixed"]["Ok"] == "0"
    # The sixth try, with the right password, waits for the window to pass.
    assert (await machine.login("zx-rfid-utf8", PASSWORD))["fixed"]["Ok"] == "0"
    assert await KioskLoginFailure.count().where(KioskLoginFailure.login == "zx-rfid-utf8") == 5
    assert await AuditEntry.count().where(AuditEntry.action == "kiosk.login_failed") == 5
    # Not logged in: the next message is refused, and says why.
    status = await machine.ask("sc_status")
    assert status["fixed"]["OnlineStatus"] == "N"
    # Another kiosk from the same address is not held up.
    assert (await machine.login("zx-rfid-gbk", PASSWORD))["fixed"]["Ok"] == "1"
    await KioskLoginFailure.delete(force=True)
    machine.close()


async def test_a_disabled_kiosk_is_cut_off_at_its_next_message(world):
    machine = await Machine(world.port).connect()
    assert (await machine.login("zx-return-slot", PASSWORD))["fixed"]["Ok"] == "1"
    await set_kiosk_enabled("test", "zx-return-slot", False)
    try:
        # The connection is closed: the library reads an empty answer, which fails its own
        # checksum handling (an UnboundLocalError there), or the socket says so.
        with pytest.raises((ConnectionError, OSError, UnboundLocalError)):
            await machine.ask("sc_status")
        again = await Machine(world.port).connect()
        assert (await again.login("zx-return-slot", PASSWORD))["fixed"]["Ok"] == "0"
        again.close()
    finally:
        await set_kiosk_enabled("test", "zx-return-slot", True)
        machine.close()
    assert await Patron.count() > 0


async def test_an_unknown_kiosk_is_named_in_the_refusal(world):
    with pytest.raises(NotFound) as missing:
        await set_kiosk_enabled("test", "nobody", False)
    assert missing.value.message() == "没有名为 nobody 的自助机账户。"
