import datetime as dt

import pytest

from library.app import create_app
from library.demo import load_demo
from library.settings import load_settings
from tests.support import client_for, empty_all_tables


@pytest.fixture
async def demo():
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28))


@pytest.fixture
def app():
    return create_app(load_settings())


@pytest.fixture
async def client(app, demo):
    async with client_for(app) as client:
        yield client
