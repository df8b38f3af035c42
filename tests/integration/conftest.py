import pytest

from tests.support import empty_all_tables


@pytest.fixture(autouse=True)
async def fresh_data():
    await empty_all_tables()
    yield
