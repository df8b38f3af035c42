"""Kiosk accounts: created by an administrator per branch, signed in by the SIP2 login message.

A kiosk acts at its branch as a member of staff would at the desk, with no right to
override a refusal: the loans services decide, this module only says who is asking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

from library import audit, config_cache
from library.accounts import rules as account_rules
from library.accounts.hashing import hash_secret, verify_secret
from library.accounts.principal import Principal
from library.accounts.service import normalise_card_number
from library.branches.tables import Branch
from library.db import Statement, is_unique_violation, read_now, run_in_write_transaction
from library.errors import InvalidInput, NotFound, SignInRefused, TooManyAttempts
from library.selfcheck import rules
from library.selfcheck.messages import kiosk_not_found
from library.selfcheck.tables import Kiosk, KioskEncoding, KioskLoginFailure
from library.settings import LANGUAGES

log = logging.getLogger("library.selfcheck")

FAILURE_RETENTION = dt.timedelta(hours=1)
ENCODINGS = tuple(encoding.value for encoding in KioskEncoding)


@dataclass(frozen=True)
class KioskAccount:
    id: int
    uuid: str
    login: str
    branch_id: int
    branch_code: str
    branch_name_zh: str
    branch_name_en: str
    location_code: str
    allowed: frozenset[str]
    encoding: str
    language: str
    patron_pin_required: bool

    def principal(self) -> Principal:
        """The kiosk as the loans services see it: staff of its one branch (never overriding)."""
        return Principal(kind="staff", id=0, uuid=self.uuid, name=f"kiosk:{self.login}", language=self.language,
                         role="kiosk", branch_ids=frozenset({self.branch_id}))


def normalise_login(login: str) -> str:
    return (login or "").strip().lower()


async def add_kiosk(actor: str, login: str, password: str, branch_code: str, location_code: str = "",
                    allowed_messages: list[str] | None = None, encoding: str = "utf-8", language: str = "zh_CN",
                    patron_pin_required: bool = True) -> str:
    """A new kiosk account; its uuid. The password is stored as an Argon2 hash only."""
    login = normalise_login(login)
    if not login or len(login) > 64 or any(ch in login for ch in "|\r\n"):
        raise InvalidInput("too_long" if len(login) > 64 else "required", field="login", limit=64)
    problem = account_rules.password_problem(password)
    if problem:
        raise InvalidInput(problem, field="password", length=account_rules.MIN_PASSWORD_LENGTH)
    if encoding not in ENCODINGS:
        raise InvalidInput("invalid_choice", field="encoding")
    if language not in LANGUAGES:
        raise InvalidInput("invalid_language", field="language")
    codes = sorted(set(allowed_messages or rules.OPTIONAL_MESSAGES))
    if rules.allowed_problem(codes):
        raise InvalidInput("invalid_choice", field="allowed_messages")
    branch = await Branch.select(Branch.id, Branch.code).where(Branch.code == branch_code.strip().upper()).first()
    if branch is None:
        raise NotFound("branch_not_found", field="branch", code=branch_code.strip().upper())
    password_hash = await hash_secret(password)
    kiosk_uuid = str(uuid_module.uuid4())

    async def work() -> None:
        await Kiosk.insert(Kiosk(uuid=kiosk_uuid, login=login, password_hash=password_hash, branch=branch["id"],
                                 location_code=location_code.strip()[:64], allowed_messages=",".join(codes),
                                 encoding=encoding, language=language, patron_pin_required=patron_pin_required,
                                 created_by=actor))
        await audit.record(actor, "kiosk.created", f"kiosk:{login}", branch=branch["code"])

    try:
        await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise InvalidInput("username_taken", field="login", username=login) from None
        raise
    return kiosk_uuid


async def set_kiosk_enabled(actor: str, login: str, enabled: bool) -> None:
    """Enable or disable a kiosk; a disabled one is cut off at its next message."""
    login = normalise_login(login)

    async def work() -> None:
        changed = await Kiosk.update({Kiosk.enabled: enabled}).where(Kiosk.login == login).returning(Kiosk.id)
        if not changed:
            raise kiosk_not_found(login)
        await audit.record(actor, "kiosk.enabled" if enabled else "kiosk.disabled", f"kiosk:{login}")

    await run_in_write_transaction(work)


async def set_kiosk_password(actor: str, login: str, password: str) -> None:
    login = normalise_login(login)
    problem = account_rules.password_problem(password)
    if problem:
        raise InvalidInput(problem, field="password", length=account_rules.MIN_PASSWORD_LENGTH)
    password_hash = await hash_secret(password)

    async def work() -> None:
        changed = await Kiosk.update({Kiosk.password_hash: password_hash}).where(Kiosk.login == login
                                                                                 ).returning(Kiosk.id)
        if not changed:
            raise kiosk_not_found(login)
        await audit.record(actor, "kiosk.password_set", f"kiosk:{login}")

    await run_in_write_transaction(work)


async def list_kiosks() -> list[dict[str, Any]]:
    return await Kiosk.select(Kiosk.login, Kiosk.branch.code, Kiosk.location_code, Kiosk.allowed_messages,
                              Kiosk.encoding, Kiosk.language, Kiosk.patron_pin_required, Kiosk.enabled
                              ).order_by(Kiosk.login)


_ACCOUNT_COLUMNS = (Kiosk.id, Kiosk.uuid, Kiosk.login, Kiosk.password_hash, Kiosk.branch, Kiosk.branch.code,
                    Kiosk.branch.name_zh, Kiosk.branch.name_en, Kiosk.location_code, Kiosk.allowed_messages,
                    Kiosk.encoding, Kiosk.language, Kiosk.patron_pin_required)


def _account(row: dict[str, Any]) -> KioskAccount:
    return KioskAccount(
        id=row["id"], uuid=str(row["uuid"]), login=row["login"], branch_id=row["branch"],
        branch_code=row["branch.code"], branch_name_zh=row["branch.name_zh"], branch_name_en=row["branch.name_en"],
        location_code=row["location_code"], allowed=rules.parse_allowed(row["allowed_messages"]),
        encoding=row["encoding"], language=row["language"], patron_pin_required=row["patron_pin_required"])


async def sign_in_kiosk(login: str, password: str, address: str, now: dt.datetime, limit: int) -> KioskAccount:
    """The SIP2 login: throttled per login and per address, every failure logged and audited.

    An unknown or disabled login costs the same slow hash as a wrong password.
    """
    login = normalise_login(login)[:64]
    since = now - account_rules.THROTTLE_WINDOW
    failures = await KioskLoginFailure.select(KioskLoginFailure.login, KioskLoginFailure.at).where(
        ((KioskLoginFailure.login == login) | (KioskLoginFailure.address == address[:64]))
        & (KioskLoginFailure.at > since))
    # `limit` a minute per login; per address (several machines behind one router) the readers'
    # sign-in allowance, a few times that.
    for counted, allowed in (([row["at"] for row in failures if row["login"] == login], limit),
                             ([row["at"] for row in failures], limit * account_rules.ADDRESS_LIMIT_FACTOR)):
        decision = account_rules.throttle(counted, now, allowed)
        if not decision.allowed:
            log.warning("kiosk login %r from %s refused: too many failures (retry in %ss)", login, address,
                        decision.retry_after_seconds)
            raise TooManyAttempts("signin_throttled", retry_after=decision.retry_after_seconds)
    row = await Kiosk.select(*_ACCOUNT_COLUMNS).where((Kiosk.login == login) & (Kiosk.enabled == True)  # noqa: E712
                                                      ).first()
    if not login or not await _password_matches(login, row["password_hash"] if row else None, password or ""):
        log.warning("kiosk login %r from %s failed: wrong login or password", login, address)

        async def record_failure() -> None:
            await KioskLoginFailure.insert(KioskLoginFailure(login=login, address=address[:64], at=now))
            await KioskLoginFailure.delete().where(KioskLoginFailure.at < now - FAILURE_RETENTION)
            await audit.record(f"kiosk:{login}", "kiosk.login_failed", f"kiosk:{login}", address=address)

        await run_in_write_transaction(record_failure)
        raise SignInRefused("bad_staff_credentials")
    log.info("kiosk %s logged in from %s", login, address)
    return _account(row)


# Logins verified by this process: login -> (stored hash, keyed digest of the password). After a
# restart, or an idle timeout, every machine logs in again; each pays the slow hash once per
# process, not at every reconnection (50 machines at ~0.2 s of CPU each, on a 2-core box).
# Wrong passwords are never remembered, and a changed stored hash forgets the entry.
_PROCESS_KEY = secrets.token_bytes(32)
_verified_logins: dict[str, tuple[str, bytes]] = {}


def _digest(password: str) -> bytes:
    return hmac.new(_PROCESS_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


async def _password_matches(login: str, stored_hash: str | None, password: str) -> bool:
    known = _verified_logins.get(login)
    if stored_hash and known and known[0] == stored_hash and hmac.compare_digest(known[1], _digest(password)):
        return True
    if not await verify_secret(stored_hash, password):
        return False
    _verified_logins[login] = (stored_hash, _digest(password))  # type: ignore[assignment]
    return True


@dataclass(frozen=True)
class KioskState:
    enabled: bool
    # The language of the card asked about (its reader's screen messages); None when no card was
    # asked about, the card is unknown, or its reader chose none.
    reader_language: str | None


async def kiosk_state(kiosk_id: int, card_number: str | None = None) -> KioskState:
    """Asked before every message: disabling a kiosk cuts it off at once, not at its next login.

    One read that also brings the configuration's version, which the loans services then take
    instead of asking for it again (as a web request does with its signed-in person), and the
    language of the reader a message names when the connection does not know it yet: the check
    costs a checkout nothing. Raw SQL: kiosk, version and reader are one row of three sources.
    """
    card = normalise_card_number(card_number) if card_number else None
    rows = await read_now(Statement(
        f"SELECT enabled, {config_cache.VERSION_COLUMN}, "
        "(SELECT language FROM patron WHERE card_number = {}) AS reader_language FROM kiosk WHERE id = {}",
        (card, kiosk_id)))
    if not rows:
        return KioskState(False, None)
    config_cache.read_with_request(rows[0]["config_version"])
    return KioskState(bool(rows[0]["enabled"]), rows[0]["reader_language"] or None)
