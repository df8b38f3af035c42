"""One world for the self-check tests of a module: the demo network, kiosk accounts, a SIP2 server
on a free port of this machine, all on the module's event loop (the test database: SQLite, or
PostgreSQL with LIBRARY_TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest_asyncio

from library.clock import today_in
from library.demo import load_demo
from library.selfcheck.server import SipServer
from library.selfcheck.service import add_kiosk
from library.settings import load_settings
from tests.support import empty_all_tables

PASSWORD = "kiosk-secret-2026"
# login -> encoding; both machines stand in the Zhenxing smart study room.
KIOSKS = {"zx-rfid-utf8": "utf-8", "zx-rfid-gbk": "gb18030"}


@dataclass
class World:
    server: SipServer
    port: int


async def make_world(**server_options) -> World:
    await empty_all_tables()
    settings = load_settings()
    await load_demo(today_in(settings.time_zone))
    for login, encoding in KIOSKS.items():
        await add_kiosk("test", login, PASSWORD, "ZX", "一楼自助借还", None, encoding)
    await add_kiosk("test", "zx-return-slot", PASSWORD, "ZX", "24h", ["09", "17"], "utf-8", "en",
                    patron_pin_required=False)
    server = SipServer(settings, **server_options)
    await server.start("127.0.0.1", 0)
    return World(server, server.port)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world():
    logging.getLogger("Sip2").setLevel(logging.CRITICAL)
    built = await make_world(idle_seconds=30, message_seconds=1)
    yield built
    await built.server.close()
    await asyncio.sleep(0)
