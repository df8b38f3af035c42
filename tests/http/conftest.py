import datetime as dt

import pytest

from library.app import create_app
from library.clock import set_clock
from library.demo import load_demo
from library.settings import load_settings
from tests.http.contract import check_answer
from tests.support import client_for, empty_all_tables


FROZEN_NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.timezone.utc)  # Saturday 09:00 in Jiaxing


@pytest.fixture(autouse=True)
def frozen_clock():
    """Pages believe it is 28 November 2026, whatever day the suite runs."""
    set_clock(lambda: FROZEN_NOW)
    yield
    set_clock(None)


@pytest.fixture
async def demo():
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28), books=False)


@pytest.fixture
def app():
    return create_app(load_settings())


@pytest.fixture
async def client(app, demo):
    """Every API answer a test sees is checked against the OpenAPI document (tests/http/contract.py)."""
    async with client_for(app) as client:
        client.event_hooks["response"].append(check_answer)
        yield client
