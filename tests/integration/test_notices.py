"""The notice outbox on a real database, sent to a real SMTP server on localhost (aiosmtpd)."""

import asyncio
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import uuid as uuid_module

import pytest

from library.clock import now_utc
from library.app import NOTICE_STEPS
from library.loans import outbox as loan_outbox
from library.loans.notices import OVERDUE
from library.loans.tables import Hold, Loan
from library.notices import outbox, worker
from library.notices.outbox import queue
from library.notices.tables import Notice
from library.settings import PROJECT_ROOT, load_settings
from tests.integration.notice_world import (NOW, TODAY, free_port, make_world, self_signed_certificate, smtp_server,
                                            until)

MINUTE = dt.timedelta(minutes=1)


def mail_settings(port: int | None, **changes):
    base = load_settings()
    changes = {"smtp_user": None, "smtp_password": None, "smtp_starttls": False, **changes}
    return dataclasses.replace(base, smtp_host="127.0.0.1" if port else None, smtp_port=port or 25,
                               mail_from="嘉兴市图书馆 <library@jxlib.example>", **changes)


async def notices(**where) -> list[dict]:
    query = Notice.select().order_by(Notice.id)
    for name, value in where.items():
        query = query.where(getattr(Notice, name) == value)
    return await query


# --- pure decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("due_on", "days", "expected"), [
    (TODAY - dt.timedelta(days=1), 3, "overdue"),
    (TODAY, 3, "due_soon"),
    (TODAY, 0, "due_soon"),
    (TODAY + dt.timedelta(days=3), 3, "due_soon"),
    (TODAY + dt.timedelta(days=4), 3, None),
    (TODAY + dt.timedelta(days=1), 0, None),
])
def test_which_reminder_a_loan_calls_for(due_on, days, expected):
    assert loan_outbox.loan_reminder(due_on, TODAY, days) == expected


@pytest.mark.parametrize(("expires_on", "ready_on", "expected"), [
    (TODAY, TODAY - dt.timedelta(days=6), True),
    (TODAY + dt.timedelta(days=1), TODAY - dt.timedelta(days=6), True),
    (TODAY + dt.timedelta(days=2), TODAY - dt.timedelta(days=5), False),
    (TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=7), False),  # expired: nothing to remind
    (TODAY + dt.timedelta(days=1), TODAY, False),  # ready today: the "ready" notice said it all
    (None, None, False),
])
def test_which_hold_is_about_to_expire(expires_on, ready_on, expected):
    assert loan_outbox.hold_reminder(expires_on, ready_on, TODAY) is expected


@pytest.mark.parametrize(("attempts", "minutes"), [(1, 1), (2, 2), (3, 4), (8, 128), (9, 256), (10, 360), (50, 360)])
def test_retries_back_off_to_six_hours(attempts, minutes):
    assert outbox.retry_delay(attempts) == dt.timedelta(minutes=minutes)


# --- queueing ---------------------------------------------------------------------------------


async def test_reminders_are_queued_once_and_only_for_what_is_due():
    world = await make_world()
    soon = await world.loan("wang", TODAY + dt.timedelta(days=2))
    late = await world.loan("wang", TODAY - dt.timedelta(days=3))
    await world.loan("wang", TODAY + dt.timedelta(days=10))  # not yet
    await world.loan("wang", TODAY - dt.timedelta(days=3), returned_at=NOW - dt.timedelta(days=1))  # back already
    await world.loan("silent", TODAY - dt.timedelta(days=3))  # no address: the desk tells them
    hold = await world.ready_hold("wang", TODAY + dt.timedelta(days=1), NOW - dt.timedelta(days=6))

    first = await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    assert first == {"due_soon": 1, "overdue": 1, "hold_expiring": 1}
    assert {n["key"] for n in await notices()} == {
        f"due_soon:{soon}:2026-11-30", f"overdue:{late}:2026-11-25", f"hold_expiring:{hold}"}
    again = await loan_outbox.queue_reminders(NOW + dt.timedelta(hours=1), due_soon_days=3)
    assert again == {"due_soon": 0, "overdue": 0, "hold_expiring": 0}
    assert await Notice.count() == 3

    # A renewal moves the due date: the loan is reminded again for its new date.
    await Loan.update({Loan.due_on: TODAY + dt.timedelta(days=3)}).where(Loan.uuid == soon)
    assert (await loan_outbox.queue_reminders(NOW, due_soon_days=3))["due_soon"] == 1
    assert await Notice.count().where(Notice.key == f"due_soon:{soon}:2026-12-01") == 1


async def test_the_day_is_the_branch_s_day():
    world = await make_world()
    loan = await world.loan("wang", dt.date(2026, 12, 1))
    # 15:30 UTC on the 27th is 23:30 in Jiaxing: 1 December is 4 days away, no reminder yet.
    assert (await loan_outbox.queue_reminders(dt.datetime(2026, 11, 27, 15, 30, tzinfo=dt.timezone.utc),
                                         due_soon_days=3))["due_soon"] == 0
    # 16:30 UTC, still the 27th in UTC, is already the 28th in Jiaxing: 3 days, remind.
    assert (await loan_outbox.queue_reminders(dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.timezone.utc),
                                         due_soon_days=3))["due_soon"] == 1
    assert (await notices())[0]["key"] == f"due_soon:{loan}:2026-12-01"


async def test_the_notice_speaks_the_reader_s_language():
    world = await make_world()
    await world.loan("wang", TODAY + dt.timedelta(days=1))
    await world.loan("emma", TODAY + dt.timedelta(days=1))
    await world.ready_hold("emma", TODAY, NOW - dt.timedelta(days=6))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    [chinese] = await notices(patron=world.patrons["wang"])
    assert chinese["language"] == "zh_CN" and chinese["subject"] == "即将到期：猜猜我有多爱你"
    assert "王芳" in chinese["body"] and "2026年11月29日" in chinese["body"]
    english = {n["kind"]: n for n in await notices(patron=world.patrons["emma"])}
    assert english["due_soon"]["language"] == "en"
    assert english["due_soon"]["subject"] == "Due soon: 猜猜我有多爱你"
    assert "Dear Emma Liu" in english["due_soon"]["body"] and "Nov 29, 2026" in english["due_soon"]["body"]
    assert english["hold_expiring"]["subject"] == "Last day to collect: 大卫，不可以"
    assert "Zhenxing Smart Study Room" in english["hold_expiring"]["body"]


# --- sending ----------------------------------------------------------------------------------


async def test_a_chinese_notice_arrives_intact():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2), title="好饿的毛毛虫——“经典”绘本")
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    [queued] = await notices()
    port = free_port()
    with smtp_server(port) as inbox:
        report = await outbox.send_due(NOW, mail_settings(port))
    assert (report.sent, report.failed) == (1, 0)
    [message] = inbox.messages
    assert message["Subject"] == "已逾期：好饿的毛毛虫——“经典”绘本" == queued["subject"]
    assert message["To"] == "wangfang@example.org"
    assert message["From"].addresses[0].display_name == "嘉兴市图书馆"
    assert message["Message-ID"] == f"<{queued['uuid']}@jxlib.example>"
    assert message["Date"].datetime == NOW
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().rstrip("\n") == queued["body"] and "王芳" in message.get_content()
    assert message["Content-Language"] == "zh-CN"  # the notice's language, as received
    [sent] = await notices()
    assert sent["sent_at"] == NOW and sent["attempts"] == 1 and sent["last_error"] == ""


async def test_mail_server_down_loses_nothing_and_backs_off():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    await world.loan("emma", TODAY + dt.timedelta(days=1))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    port = free_port()  # nothing listens there yet
    settings = mail_settings(port)

    down = await outbox.send_due(NOW, settings)
    assert (down.sent, down.failed) == (0, 2) and down.errors
    for notice in await notices():
        assert notice["sent_at"] is None and notice["attempts"] == 1 and notice["last_error"]
        assert notice["send_after"] == NOW + MINUTE
    # Not retried before its time; then with a doubled wait.
    assert (await outbox.send_due(NOW + dt.timedelta(seconds=30), settings)).failed == 0
    assert (await outbox.send_due(NOW + MINUTE, settings)).failed == 2
    assert {(n["attempts"], n["send_after"]) for n in await notices()} == {(2, NOW + 3 * MINUTE)}

    with smtp_server(port) as inbox:
        assert (await outbox.send_due(NOW + 2 * MINUTE, settings)).sent == 0  # still backing off
        back = await outbox.send_due(NOW + 3 * MINUTE, settings)
        assert (back.sent, back.failed) == (2, 0)
        assert sorted(m["To"] for m in inbox.messages) == ["emma@example.org", "wangfang@example.org"]
        # Sent is sent: another round sends nothing twice.
        assert (await outbox.send_due(NOW + dt.timedelta(days=1), settings)).sent == 0
        assert len(inbox.messages) == 2
    assert all(n["sent_at"] == NOW + 3 * MINUTE and n["attempts"] == 3 for n in await notices())


async def test_a_refused_address_does_not_hold_up_the_others():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    await world.loan("emma", TODAY - dt.timedelta(days=2))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    port = free_port()
    with smtp_server(port, refuse=("wangfang@example.org",)) as inbox:
        report = await outbox.send_due(NOW, mail_settings(port))
    assert (report.sent, report.failed) == (1, 1)
    assert [m["To"] for m in inbox.messages] == ["emma@example.org"]
    [refused] = await notices(to_address="wangfang@example.org")
    assert refused["sent_at"] is None and "550" in refused["last_error"] and refused["send_after"] == NOW + MINUTE


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # localhost, on purpose
async def test_the_library_signs_in_to_its_mail_server():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    port = free_port()
    with smtp_server(port, login=("library", "right-password")) as inbox:
        wrong = await outbox.send_due(NOW, mail_settings(port, smtp_user="library", smtp_password="wrong"))
        assert (wrong.sent, wrong.failed) == (0, 1) and "Authentication" in wrong.errors[0]
        right = await outbox.send_due(NOW + MINUTE, mail_settings(port, smtp_user="library",
                                                                  smtp_password="right-password"))
        assert (right.sent, right.failed) == (1, 0) and len(inbox.messages) == 1


def settings_from(**variables: str):
    """The settings a server started with these environment variables would read."""
    return load_settings({**os.environ, **variables})


async def test_notices_go_out_over_starttls_signed_in(tmp_path, monkeypatch):
    """LIBRARY_SMTP_STARTTLS=true: the connection to LIBRARY_SMTP_HOST:LIBRARY_SMTP_PORT turns to TLS,
    the server's certificate checked, before LIBRARY_SMTP_USER / LIBRARY_SMTP_PASSWORD are sent and
    the message (from LIBRARY_MAIL_FROM) goes. The server here offers STARTTLS and requires it."""
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    certificate, key = self_signed_certificate(tmp_path)
    port = free_port()
    mail = {"LIBRARY_SMTP_HOST": "127.0.0.1", "LIBRARY_SMTP_PORT": str(port), "LIBRARY_SMTP_USER": "library",
            "LIBRARY_SMTP_PASSWORD": "right-password", "LIBRARY_MAIL_FROM": "嘉兴市图书馆 <library@jxlib.example>"}
    with smtp_server(port, login=("library", "right-password"), tls=(certificate, key)) as inbox:
        # Without STARTTLS the server will not take the password (nor the mail) in plain text.
        plain = await outbox.send_due(NOW, settings_from(**mail, LIBRARY_SMTP_STARTTLS="false"))
        assert (plain.sent, plain.failed) == (0, 1) and "AUTH" in plain.errors[0]
        # With it, a certificate nobody vouches for is refused: no password goes to an impostor.
        untrusted = await outbox.send_due(NOW + MINUTE, settings_from(**mail, LIBRARY_SMTP_STARTTLS="true"))
        assert (untrusted.sent, untrusted.failed) == (0, 1) and "CERTIFICATE_VERIFY_FAILED" in untrusted.errors[0]
        # The mail server's certificate trusted (as a site's own CA would be): sent.
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
        sent = await outbox.send_due(NOW + 3 * MINUTE, settings_from(**mail, LIBRARY_SMTP_STARTTLS="true"))
        assert (sent.sent, sent.failed) == (1, 0)
    assert inbox.sessions == [{"tls": True, "signed_in": True}]
    [message] = inbox.messages
    assert message["To"] == "wangfang@example.org" and message["From"].addresses[0].addr_spec == "library@jxlib.example"
    [notice] = await notices()
    assert notice["sent_at"] == NOW + 3 * MINUTE and notice["attempts"] == 3


async def test_two_workers_never_send_the_same_notice():
    world = await make_world()
    for number in range(30):
        await queue(OVERDUE, world.patrons["wang"], f"test:{number}", NOW, title=f"第{number}本",
                    barcode=f"B{number}", day=TODAY)
    port = free_port()
    with smtp_server(port) as inbox:
        settings = mail_settings(port)
        reports = await asyncio.gather(*(outbox.send_due(NOW, settings, batch=20) for _ in range(3)))
        # A worker that lost every row it read to another leaves them; a later round sends the rest.
        reports.append(await outbox.send_due(NOW, settings, batch=50))
        assert sum(r.sent for r in reports) == 30 and sum(r.failed for r in reports) == 0
        await until(lambda: len(inbox.messages) >= 30)
        ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 30 == len(set(ids))
    assert await Notice.count().where(Notice.sent_at.is_null()) == 0


async def test_without_a_mail_server_notices_wait():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    await loan_outbox.queue_reminders(NOW, due_soon_days=3)
    report = await outbox.send_due(NOW, mail_settings(None))
    assert report.disabled and report.sent == 0
    [waiting] = await notices()
    assert waiting["sent_at"] is None and waiting["attempts"] == 0


# --- the round and the loop -------------------------------------------------------------------


async def test_one_round_expires_the_shelf_reminds_and_sends():
    world = await make_world()
    await world.loan("wang", TODAY + dt.timedelta(days=3))
    expired = await world.ready_hold("emma", TODAY - dt.timedelta(days=1), NOW - dt.timedelta(days=8))
    expiring = await world.ready_hold("emma", TODAY, NOW - dt.timedelta(days=7), title="好饿的毛毛虫")
    port = free_port()
    with smtp_server(port) as inbox:
        report = await worker.run_cycle(NOW, mail_settings(port), NOTICE_STEPS)
    assert report.failures == []
    assert report.holds_expired == 1
    assert report.queued == {"due_soon": 1, "overdue": 0, "hold_expiring": 1, "session_reminder": 0}
    assert (report.sending.sent, report.sending.failed) == (2, 0) and len(inbox.messages) == 2
    assert (await Hold.select(Hold.status).where(Hold.uuid == expired).first())["status"] == "expired"
    assert await Notice.count().where(Notice.key == f"hold_expiring:{expiring}") == 1


async def test_the_server_loop_sends_and_stops():
    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    port = free_port()
    with smtp_server(port) as inbox:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.notice_loop(mail_settings(port, notice_interval_seconds=1), stop,
                                                      NOTICE_STEPS, first_delay=0))
        await until(lambda: len(inbox.messages) == 1)
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert task.done() and task.exception() is None


async def test_reminders_come_the_setting_s_days_before_the_due_date():
    """LIBRARY_DUE_SOON_DAYS: with 5, a loan due in five days is reminded today; with 3 (the default), not yet."""
    world = await make_world()
    loan = await world.loan("wang", TODAY + dt.timedelta(days=5))
    not_yet = await worker.run_cycle(NOW, settings_from(LIBRARY_DUE_SOON_DAYS="3"), NOTICE_STEPS)
    assert not_yet.queued["due_soon"] == 0
    reminded = await worker.run_cycle(NOW, settings_from(LIBRARY_DUE_SOON_DAYS="5"), NOTICE_STEPS)
    assert reminded.queued["due_soon"] == 1
    assert [n["key"] for n in await notices()] == [f"due_soon:{loan}:2026-12-03"]


async def test_returned_loans_are_anonymised_after_the_setting_s_days():
    """LIBRARY_LOAN_HISTORY_DAYS: with 7, a loan returned eight days ago loses its reader at the next
    run of the retention job; one returned six days ago keeps it."""
    from library.privacy.retention import forget

    world = await make_world()
    older = await world.loan("wang", TODAY - dt.timedelta(days=10), returned_at=NOW - dt.timedelta(days=8))
    newer = await world.loan("wang", TODAY - dt.timedelta(days=8), returned_at=NOW - dt.timedelta(days=6))
    settings = settings_from(LIBRARY_LOAN_HISTORY_DAYS="7")
    done = await forget(NOW, settings.loan_history_days, settings.activity_history_days)
    assert done.counts["loans"] == 1
    readers = {row["uuid"]: row["patron"] for row in await Loan.select(Loan.uuid, Loan.patron)}
    assert readers[uuid_module.UUID(older)] is None and readers[uuid_module.UUID(newer)] == world.patrons["wang"]


async def test_audit_entries_naming_a_reader_go_after_the_activity_setting_s_days():
    """LIBRARY_ACTIVITY_HISTORY_DAYS: with 10, an audit entry about a reader made eleven days ago is
    deleted by the retention job; one made nine days ago, and one about a record, stay."""
    from library.branches.tables import AuditEntry
    from library.privacy.retention import forget

    await make_world()
    for subject, days in (("patron:ZX1", 11), ("patron:ZX2", 9), ("record:r1", 11)):
        await AuditEntry.insert(AuditEntry(actor="staff:x", action="test", subject=subject,
                                           at=NOW - dt.timedelta(days=days)))
    settings = settings_from(LIBRARY_ACTIVITY_HISTORY_DAYS="10")
    assert settings.activity_history_days == 10
    await forget(NOW, settings.loan_history_days, settings.activity_history_days)
    left = sorted(row["subject"] for row in await AuditEntry.select(AuditEntry.subject).where(
        AuditEntry.action == "test"))
    assert left == ["patron:ZX2", "record:r1"]


async def test_the_running_server_sends_every_interval():
    """LIBRARY_NOTICE_INTERVAL_SECONDS: the server (its lifespan) runs the round by itself, every
    interval: a reminder queued after the first round is sent by a later one."""
    from library.app import create_app
    from tests.support import running

    world = await make_world()
    await world.loan("wang", TODAY - dt.timedelta(days=2))
    port = free_port()
    app = create_app(settings_from(LIBRARY_NOTICE_INTERVAL_SECONDS="1", LIBRARY_SMTP_HOST="127.0.0.1",
                                   LIBRARY_SMTP_PORT=str(port)))
    with smtp_server(port) as inbox:
        async with running(app):
            await until(lambda: len(inbox.messages) == 1)
            await queue(OVERDUE, world.patrons["emma"], "test:later", now_utc(), title="大卫，不可以",
                        barcode="B1", day=TODAY)
            await until(lambda: len(inbox.messages) == 2)
    assert sorted(m["To"] for m in inbox.messages) == ["emma@example.org", "wangfang@example.org"]


async def test_a_hold_ready_mail_reaches_the_reader_in_their_language():
    """A return traps a copy for a waiting hold; the notice worker's round sends the hold-ready mail;
    the mail server receives it in the reader's language (English here), saying so in its headers."""
    from library.accounts.principal import Principal
    from library.accounts.tables import Patron
    from library.demo import load_demo
    from library.loans import service

    await load_demo(TODAY)
    # 张建国 (JX20000001) waits for 大卫，不可以 at JX, whose two copies are both lent; he reads English mail.
    await Patron.update({Patron.email: "zhang@example.org", Patron.language: "en"}).where(
        Patron.card_number == "JX20000001")
    staff = Principal(kind="staff", id=0, uuid="test-admin", name="测试管理员", language="zh_CN",
                      role="administrator", all_branches=True)
    lent = await Loan.select(Loan.item.barcode).where(
        (Loan.item.record.isbn13 == "9787539109619") & Loan.returned_at.is_null()).order_by(Loan.id).first()
    returned = await service.checkin(staff, "JX", lent["item.barcode"], NOW)
    assert returned.route == "hold_shelf" and returned.hold_patron_card == "JX20000001"

    port = free_port()
    with smtp_server(port) as inbox:
        report = await worker.run_cycle(NOW, mail_settings(port), NOTICE_STEPS)
    assert report.failures == [] and report.sending.sent == 1
    [message] = inbox.messages
    assert message["To"] == "zhang@example.org"
    assert message["Subject"] == "Your hold is ready: 大卫，不可以"
    assert message["Content-Language"] == "en"
    body = message.get_content()
    assert "is waiting for you on the hold shelf at Jiaxing Library" in body.replace("\n", " ")
    [notice] = await notices(kind="hold_ready")
    assert notice["sent_at"] == NOW and message["Message-ID"] == f"<{notice['uuid']}@jxlib.example>"


async def test_the_loop_is_off_at_interval_zero():
    stop_loop = worker.start_notice_loop(mail_settings(None, notice_interval_seconds=0))
    await stop_loop()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "library-notices"]


def test_library_notices_send_says_when_sending_is_off():
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LIBRARY_SMTP")}
    result = subprocess.run([sys.executable, "-m", "library.cli", "notices", "send"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**environment, "LANG": "en_US.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert "Sending is off: LIBRARY_SMTP_HOST is not set" in result.stdout
    assert "Reminders queued: 0 due soon, 0 overdue, 0 last day to collect" in result.stdout
    listed = subprocess.run([sys.executable, "-m", "library.cli", "notices", "list"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, env={**environment, "LANG": "en_US.UTF-8"})
    assert listed.returncode == 0 and "No notices wait to be sent." in listed.stdout
