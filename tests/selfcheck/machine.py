"""A self-check machine as a SIP2 client library from PyPI (Sip2 1.1, not ours) drives it.

The library is blocking (plain sockets): its calls run in a thread, so that the server, on the
test's event loop, can answer. Its own quirks, met here and left as they are (a machine in the
field has its quirks too): it checksums characters rather than bytes, never rejects a bad
checksum in an answer, reads an answer with one `recv`, sends Renew All (65) without its
transaction date, and reads the Hold answer (16) as if the expiration date were a fixed field.
"""

from __future__ import annotations

import asyncio
import logging

from Sip2.sip2 import Sip2

from library.selfcheck import protocol


class Machine:
    def __init__(self, port: int, encoding: str = "utf-8", tls: bool = False) -> None:
        client = Sip2()
        client.hostName = "localhost" if tls else "127.0.0.1"
        client.hostPort = port
        client.tlsEnable = tls
        client.tlsAcceptSelfsigned = True
        client.hostEncoding = encoding
        client.socketTimeout = 15
        client.log = logging.getLogger("Sip2")  # else it opens sip2.log in the working folder
        client.institutionId = "ZX"
        client.scLocation = "一楼自助借还"
        self.client = client
        self.encoding = encoding
        self.last_raw = ""

    async def connect(self) -> "Machine":
        await asyncio.to_thread(self.client.connect)
        return self

    async def ask(self, name: str, *args, **kwargs) -> dict:
        """Send one request (`sip_<name>_request`) and read its answer the library's way."""
        request = getattr(self.client, f"sip_{name}_request")(*args, **kwargs)
        raw = await asyncio.to_thread(self.client.get_response, request)
        self.last_raw = raw
        assert raw.endswith("\r"), raw
        # The library does not check the answer's checksum; the test does.
        body, given = raw.rstrip("\r")[:-4], raw.rstrip("\r")[-4:]
        assert protocol.checksum(body.encode(self.encoding)) == given, raw
        parsed = getattr(self.client, f"sip_{name}_response")(raw)
        return parsed

    async def send(self, request: str) -> str:
        """A request as the library built it, the answer as it came (for messages it cannot parse)."""
        self.last_raw = await asyncio.to_thread(self.client.get_response, request)
        return self.last_raw

    async def login(self, login: str, password: str) -> dict:
        return await self.ask("login", login, password)

    def reader(self, card: str, pin: str | None = "123456") -> None:
        self.client.patron = card
        self.client.patronpwd = pin or ""

    def close(self) -> None:
        try:
            self.client.disconnect()
        except OSError:
            pass


def said(reason: str, /, language: str = "zh_CN", **params) -> str:
    """A reason's message as the catalogs have it, in a language."""
    from library.errors import MESSAGES
    from library.i18n import current_language, gettext

    token = current_language.set(language)
    try:
        return gettext(MESSAGES[reason]).format(**params)
    finally:
        current_language.reset(token)


def first(parsed: dict, field_id: str, default: str = "") -> str:
    return (parsed["variable"].get(field_id) or [default])[0]


def screen(parsed: dict) -> list[str]:
    return parsed["variable"].get("AF", [])
