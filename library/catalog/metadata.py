"""Book metadata by ISBN, from pluggable providers, with a short timeout and a cache.

Providers are tried in the order of LIBRARY_METADATA_PROVIDERS: `local` (a JSON file
shipped with the package, and the only one the tests use), and isbnlib's services
(`goob`, `openl`, `wiki`). Offline, a provider fails fast or times out, and the
librarian gets an empty form: a lookup never raises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Protocol

import httpx
import isbnlib

from library.catalog.tables import MetadataCache
from library.settings import PACKAGE_ROOT

log = logging.getLogger("library.metadata")

LOCAL_FILE = PACKAGE_ROOT / "catalog" / "data" / "picture_books.json"
FOUND_FOR = dt.timedelta(days=30)
NOT_FOUND_FOR = dt.timedelta(days=1)
COVER_LIMIT_BYTES = 2 * 1024 * 1024
IMAGE_SIGNATURES = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}


def image_extension(data: bytes) -> str | None:
    """The image type by its first bytes (never by a file name or a header that may lie)."""
    for signature, extension in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class MetadataProvider(Protocol):
    name: str

    async def lookup(self, isbn13: str) -> dict[str, Any] | None: ...


class LocalProvider:
    name = "local"

    def __init__(self, path: Path = LOCAL_FILE) -> None:
        self.path = path

    async def lookup(self, isbn13: str) -> dict[str, Any] | None:
        books = json.loads(self.path.read_text(encoding="utf-8"))
        return books.get(isbn13)


class IsbnlibProvider:
    """isbnlib's blocking urllib calls, in a thread, bounded by a timeout."""

    def __init__(self, service: str, timeout: float) -> None:
        self.name = service
        self.timeout = timeout

    async def lookup(self, isbn13: str) -> dict[str, Any] | None:
        isbnlib.config.seturlopentimeout(self.timeout)
        found = await asyncio.wait_for(asyncio.to_thread(isbnlib.meta, isbn13, self.name), self.timeout + 1)
        if not found or not found.get("Title"):
            return None
        year = str(found.get("Year") or "")
        language = {"zh": "chi", "en": "eng", "ja": "jpn", "fr": "fre", "de": "ger"}.get(found.get("Language", ""), "")
        return {
            "title": found["Title"],
            "contributors": [{"name": name, "role": "author"} for name in found.get("Authors") or [] if name],
            "publisher": found.get("Publisher") or "",
            "publication_year": int(year) if year.isdecimal() else None,
            "language": language or "chi",
        }


def providers_from(names: str, timeout: float) -> list[MetadataProvider]:
    chosen: list[MetadataProvider] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "local":
            chosen.append(LocalProvider())
        elif name:
            chosen.append(IsbnlibProvider(name, timeout))
    return chosen


async def _cached(isbn13: str, provider: str, now: dt.datetime) -> tuple[bool, dict[str, Any] | None]:
    row = await MetadataCache.select().where(
        (MetadataCache.isbn13 == isbn13) & (MetadataCache.provider == provider)
    ).order_by(MetadataCache.fetched_at, ascending=False).first()
    if row is None:
        return False, None
    payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
    fresh_for = FOUND_FOR if payload else NOT_FOUND_FOR
    if now - row["fetched_at"] > fresh_for:
        return False, None
    return True, payload


async def _remember(isbn13: str, provider: str, payload: dict[str, Any] | None, now: dt.datetime) -> None:
    await MetadataCache.delete().where((MetadataCache.isbn13 == isbn13) & (MetadataCache.provider == provider))
    await MetadataCache.insert(MetadataCache(isbn13=isbn13, provider=provider, fetched_at=now,
                                             payload=json.dumps(payload, ensure_ascii=False) if payload else None))


async def lookup(isbn13: str, providers: list[MetadataProvider], now: dt.datetime) -> dict[str, Any] | None:
    """The first provider's answer (cached), or None: unknown, offline, or too slow."""
    for provider in providers:
        if provider.name != "local":
            hit, payload = await _cached(isbn13, provider.name, now)
            if hit:
                if payload:
                    return {**payload, "source": provider.name}
                continue
        try:
            payload = await provider.lookup(isbn13)
        except Exception as error:  # noqa: BLE001 - offline, refused, malformed: the form is still shown
            log.info("metadata provider %s failed for %s: %s", provider.name, isbn13, type(error).__name__)
            continue
        if provider.name != "local":
            await _remember(isbn13, provider.name, payload, now)
        if payload:
            return {**payload, "source": provider.name}
    return None


async def fetch_cover(isbn13: str, covers_dir: Path, timeout: float) -> str | None:
    """A cover from isbnlib's services, stored locally; None offline or when there is none."""
    try:
        isbnlib.config.seturlopentimeout(timeout)
        links = await asyncio.wait_for(asyncio.to_thread(isbnlib.cover, isbn13), timeout + 1)
        url = (links or {}).get("thumbnail") or (links or {}).get("smallThumbnail")
        if not url:
            return None
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            response = await client.get(url)
        data = response.content[:COVER_LIMIT_BYTES + 1]
        extension = image_extension(data)
        if response.status_code != 200 or extension is None or len(data) > COVER_LIMIT_BYTES:
            return None
        return store_cover(covers_dir, isbn13, data, extension)
    except Exception as error:  # noqa: BLE001 - a missing cover is not an error
        log.info("no cover for %s: %s", isbn13, type(error).__name__)
        return None


def store_cover(covers_dir: Path, stem: str, data: bytes, extension: str) -> str:
    covers_dir.mkdir(parents=True, exist_ok=True)
    name = f"{stem}.{extension}"
    (covers_dir / name).write_bytes(data)
    return name
