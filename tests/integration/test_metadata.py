"""Metadata look-ups never fail a librarian: offline, slow or unknown means an empty form."""

import asyncio
import datetime as dt

from library.catalog import metadata
from library.catalog.tables import MetadataCache

NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.timezone.utc)


class Fake:
    def __init__(self, name, answer=None, error=None, delay=0.0):
        self.name, self.answer, self.error, self.delay, self.calls = name, answer, error, delay, 0

    async def lookup(self, isbn13):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.answer


async def test_the_local_provider_knows_the_demo_books():
    found = await metadata.lookup("9787533278267", [metadata.LocalProvider()], NOW)
    assert found["title"] == "好饿的毛毛虫" and found["source"] == "local"


async def test_offline_providers_are_skipped_and_the_next_one_answers():
    offline = Fake("goob", error=OSError("Name or service not known"))
    other = Fake("openl", answer={"title": "Where the Wild Things Are"})
    found = await metadata.lookup("9780060254926", [offline, other], NOW)
    assert found == {"title": "Where the Wild Things Are", "source": "openl"}


async def test_nobody_knows_it_is_none_not_an_error():
    assert await metadata.lookup("9780060254926", [Fake("goob", error=TimeoutError()), Fake("openl")], NOW) is None


async def test_answers_are_cached_and_not_asked_again():
    provider = Fake("openl", answer={"title": "Cached"})
    await metadata.lookup("9780060254926", [provider], NOW)
    again = await metadata.lookup("9780060254926", [provider], NOW + dt.timedelta(days=1))
    assert again["title"] == "Cached" and provider.calls == 1
    later = await metadata.lookup("9780060254926", [provider], NOW + dt.timedelta(days=31))
    assert later["title"] == "Cached" and provider.calls == 2
    assert await MetadataCache.count() == 1


async def test_an_unknown_isbn_is_remembered_for_a_day():
    provider = Fake("openl", answer=None)
    await metadata.lookup("9780060254926", [provider], NOW)
    await metadata.lookup("9780060254926", [provider], NOW + dt.timedelta(hours=2))
    assert provider.calls == 1
    await metadata.lookup("9780060254926", [provider], NOW + dt.timedelta(days=2))
    assert provider.calls == 2


async def test_an_unresponsive_isbnlib_service_is_cut_short(monkeypatch):
    import threading

    release, finished = threading.Event(), threading.Event()

    def hang(isbn, service):
        release.wait(10)  # an unresponsive host: it answers only when the test lets it
        finished.set()

    monkeypatch.setattr(metadata.isbnlib, "meta", hang)
    try:
        assert await metadata.lookup("9780060254926", [metadata.IsbnlibProvider("goob", timeout=1)], NOW) is None
        assert not finished.is_set(), "the lookup waited for the provider instead of giving up"
    finally:
        release.set()


def test_image_types_are_told_by_their_bytes():
    assert metadata.image_extension(b"\xff\xd8\xff\xe0rest") == "jpg"
    assert metadata.image_extension(b"\x89PNG\r\n\x1a\nrest") == "png"
    assert metadata.image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert metadata.image_extension(b"<svg onload=alert(1)>") is None


async def test_an_isbnlib_answer_is_mapped_to_a_record(monkeypatch):
    def meta(isbn, service):
        assert (isbn, service) == ("9780060254926", "openl")
        return {"ISBN-13": isbn, "Title": "Where the Wild Things Are", "Authors": ["Maurice Sendak"],
                "Publisher": "Harper & Row", "Year": "1963", "Language": "en"}

    monkeypatch.setattr(metadata.isbnlib, "meta", meta)
    found = await metadata.lookup("9780060254926", [metadata.IsbnlibProvider("openl", timeout=2)], NOW)
    assert found == {"title": "Where the Wild Things Are", "contributors": [{"name": "Maurice Sendak", "role": "author"}],
                     "publisher": "Harper & Row", "publication_year": 1963, "language": "eng", "source": "openl"}
