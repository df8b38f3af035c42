"""Warm start (issue 20, part 3): what a first search needs is loaded when the service starts,
not by the first reader who searches. Checked in a process of its own, so nothing an earlier
test loaded counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from library.catalog import search
from library.settings import PROJECT_ROOT

CHECK = """
import asyncio, json
from litestar.testing import AsyncTestClient
from library.app import create_app
from library.catalog import search_text
from library import i18n
from library.catalog import search

searched = []
real_search = search.search

async def counted(query, *args, **kwargs):
    searched.append(query)
    return await real_search(query, *args, **kwargs)

search.search = counted

def loaded():
    return {"pinyin": search_text.pinyin_tables.cache_info().currsize,
            "syllables": search_text._syllables.cache_info().currsize,
            "translations": i18n.translations.cache_info().currsize}

async def main():
    app = create_app()
    before = loaded()
    async with AsyncTestClient(app=app):
        started = loaded()
    print(json.dumps({"before": before, "started": started, "searched": searched}))

asyncio.run(main())
"""


def test_the_service_loads_what_a_first_search_needs_before_it_answers():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"pinyin": 0, "syllables": 0, "translations": 0}
    assert seen["started"] == {"pinyin": 1, "syllables": 1, "translations": 2}
    # the database's side of a first search: each kind of query searched once before a reader's
    assert seen["searched"] == list(search.WARM_QUERIES)


async def test_a_warm_up_search_that_fails_leaves_the_service_starting_and_answering(monkeypatch):
    """A database the warm-up cannot search (whatever the cause) costs a slower first search, never
    a service that does not start."""
    from litestar.testing import AsyncTestClient

    from library.app import create_app

    tried = []

    async def broken() -> None:
        tried.append(True)
        raise RuntimeError("no catalogue today")

    monkeypatch.setattr(search, "warm", broken)
    async with AsyncTestClient(app=create_app()) as client:
        response = await client.get("/api/ping")
    assert response.status_code == 200
    assert tried == [True]
