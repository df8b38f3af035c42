"""The catalogues intake asks (copy cataloguing targets): kept by administrators, read by intake.

A target's password is sent to the target, so it is stored as given; it is never shown back:
the form leaves its field empty, and saving an empty field keeps the password there was
("clear the password" is a box of its own)."""

from __future__ import annotations

import re
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

from library import audit
from library.catalog.sources.base import CHARSETS, PROTOCOLS, SYNTAXES, Target
from library.catalog.tables import CopyTarget
from library.db import is_unique_violation, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidRecord, NotFound

MAX_TIMEOUT_SECONDS = 120
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,253})$")  # a name or an IPv4 address; no scheme, no path
_FIELDS = ("name", "protocol", "host", "port", "database", "syntax", "charset", "username", "timeout_seconds",
           "enabled")


@dataclass
class TargetInput:
    name: str
    protocol: str
    host: str
    port: int
    database: str = ""
    syntax: str = "marc21"
    charset: str = "utf-8"
    username: str = ""
    password: str | None = None  # None: keep the one stored
    timeout_seconds: float = 10.0
    enabled: bool = False


def target_input(form: Any) -> TargetInput:
    """The target form read and checked field by field (every problem at once)."""
    problems: list = []
    text = {name: (form.get(name) or "").strip() for name in ("name", "protocol", "host", "port", "database",
                                                               "syntax", "charset", "username", "timeout_seconds")}
    if not text["name"]:
        problems.append(("name", "required", {}))
    elif len(text["name"]) > 100:
        problems.append(("name", "too_long", {"limit": 100}))
    for name, choices in (("protocol", PROTOCOLS), ("syntax", SYNTAXES), ("charset", CHARSETS)):
        if text[name] not in choices:
            problems.append((name, "invalid_choice", {}))
    if not _HOST.match(text["host"]):
        problems.append(("host", "target_host", {}))
    port = int(text["port"]) if text["port"].isdigit() else 0
    if not 0 < port < 65536:
        problems.append(("port", "number_out_of_range", {"low": 1, "high": 65535}))
    try:
        timeout = float(text["timeout_seconds"] or "10")
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        problems.append(("timeout_seconds", "number_out_of_range", {"low": 1, "high": MAX_TIMEOUT_SECONDS}))
    for name, limit in (("database", 200), ("username", 100)):
        if len(text[name]) > limit:
            problems.append((name, "too_long", {"limit": limit}))
    password = form.get("password") or ""
    if len(password) > 200:
        problems.append(("password", "too_long", {"limit": 200}))
    if problems:
        raise InvalidRecord(problems)
    return TargetInput(
        name=text["name"], protocol=text["protocol"], host=text["host"], port=port, database=text["database"],
        syntax=text["syntax"], charset=text["charset"], username=text["username"],
        password="" if form.get("clear_password") else (password or None), timeout_seconds=timeout,
        enabled=bool(form.get("enabled")))


def target_of(row: dict[str, Any]) -> Target:
    return Target(name=row["name"], protocol=row["protocol"], host=row["host"], port=row["port"],
                  database=row["database"], syntax=row["syntax"], charset=row["charset"],
                  username=row["username"] or None, password=row["password"] or None,
                  timeout_seconds=float(row["timeout_seconds"]), enabled=row["enabled"], uuid=str(row["uuid"]))


def _view(row: dict[str, Any]) -> dict[str, Any]:
    """A target as a page shows it: everything but the password, and whether there is one."""
    view = {name: row[name] for name in _FIELDS}
    view["uuid"] = str(row["uuid"])
    view["has_password"] = bool(row.get("password"))
    return view


async def list_targets() -> list[dict[str, Any]]:
    async with read_transaction():
        rows = await CopyTarget.select().order_by(CopyTarget.name)
    return [_view(row) for row in rows]


async def _row(uuid: str) -> dict[str, Any]:
    try:
        row = await CopyTarget.select().where(CopyTarget.uuid == uuid).first()
    except (ValueError, TypeError):
        row = None
    if row is None:
        raise NotFound("target_not_found")
    return row


async def target_detail(uuid: str) -> dict[str, Any]:
    return _view(await _row(_uuid(uuid)))


async def target(uuid: str) -> Target:
    """The target to ask (with its password): intake's and the test button's."""
    return target_of(await _row(_uuid(uuid)))


async def enabled_targets() -> list[Target]:
    async with read_transaction():
        rows = await CopyTarget.select().where(CopyTarget.enabled == True).order_by(CopyTarget.name)  # noqa: E712
    return [target_of(row) for row in rows]


def _uuid(value: str) -> str:
    try:
        return str(uuid_module.UUID(str(value)))
    except ValueError:
        raise NotFound("target_not_found") from None


async def save_target(data: TargetInput, actor: str, uuid: str | None = None) -> str:
    """Create a target (uuid None) or change one; a name already used is refused."""
    values = {CopyTarget.name: data.name, CopyTarget.protocol: data.protocol, CopyTarget.host: data.host,
              CopyTarget.port: data.port, CopyTarget.database: data.database, CopyTarget.syntax: data.syntax,
              CopyTarget.charset: data.charset, CopyTarget.username: data.username,
              CopyTarget.timeout_seconds: data.timeout_seconds, CopyTarget.enabled: data.enabled}
    if data.password is not None:
        values[CopyTarget.password] = data.password

    async def work() -> str:
        if uuid is None:
            rows = await CopyTarget.insert(CopyTarget(**{column._meta.name: value for column, value in values.items()})
                                           ).returning(CopyTarget.uuid)
            saved = str(rows[0]["uuid"])
        else:
            saved = _uuid(uuid)
            rows = await CopyTarget.update(values).where(CopyTarget.uuid == saved).returning(CopyTarget.id)
            if not rows:
                raise NotFound("target_not_found")
        await audit.record(actor, "copy_target.saved", f"copy_target:{saved}", name=data.name,
                           host=data.host, port=data.port, enabled=data.enabled)
        return saved

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("target_name_taken", field="name", name=data.name) from None
        raise


async def set_enabled(uuid: str, enabled: bool, actor: str) -> None:
    uuid = _uuid(uuid)

    async def work() -> None:
        rows = await CopyTarget.update({CopyTarget.enabled: enabled}).where(CopyTarget.uuid == uuid).returning(
            CopyTarget.id)
        if not rows:
            raise NotFound("target_not_found")
        await audit.record(actor, "copy_target.enabled" if enabled else "copy_target.disabled",
                           f"copy_target:{uuid}")

    await run_in_write_transaction(work)
