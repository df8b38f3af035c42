"""Accounts: signing in, loading who is signed in, creating patrons and staff."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from library import audit, config_cache
from library.accounts import permissions, rules
from library.accounts.hashing import hash_secret, verify_secret
from library.accounts.principal import Principal
from library.accounts.tables import GuardianLink, Patron, PinChange, SignInFailure, StaffBranch, StaffMember
from library.branches.tables import Branch
from library.db import Statement, contains_text, is_unique_violation, read_now, read_transaction, \
    run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted, SignInRefused, TooManyAttempts
from library.settings import LANGUAGES

FAILURE_RETENTION = dt.timedelta(hours=1)


def normalise_card_number(card_number: str) -> str:
    return "".join((card_number or "").split()).upper()


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


# --- signing in -------------------------------------------------------------


async def _check_throttle(keys: dict[str, int], now: dt.datetime) -> None:
    since = now - rules.THROTTLE_WINDOW
    async with read_transaction():
        for key, limit in keys.items():
            rows = await SignInFailure.select(SignInFailure.at).where(
                (SignInFailure.key == key) & (SignInFailure.at > since)
            )
            decision = rules.throttle([row["at"] for row in rows], now, limit)
            if not decision.allowed:
                raise TooManyAttempts("signin_throttled", retry_after=decision.retry_after_seconds)


async def _record_failure(keys: list[str], now: dt.datetime) -> None:
    async def work() -> None:
        await SignInFailure.insert(*[SignInFailure(key=key, at=now) for key in keys])
        await SignInFailure.delete().where(SignInFailure.at < now - FAILURE_RETENTION)

    await run_in_write_transaction(work)


async def _clear_failures(key: str) -> None:
    await run_in_write_transaction(lambda: SignInFailure.delete().where(SignInFailure.key == key).run())


def _throttle_keys(account_key: str, address: str, limit: int) -> dict[str, int]:
    return {_fitting(account_key): limit, _fitting(f"address:{address}"): limit * rules.ADDRESS_LIMIT_FACTOR}


def _fitting(key: str) -> str:
    """A throttle key within the column's 128 characters: a login typed longer than any card or
    username is still counted (as its hash), never a database error."""
    if len(key) <= 128:
        return key
    return key[:40] + ":sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def _sign_in(kind: str, login: str, secret: str, stored: dict[str, Any] | None, refusal: str,
                   address: str, now: dt.datetime, limit: int) -> Principal:
    """Throttle, verify the slow hash (also for an unknown login: same time), record the outcome."""
    account_key = f"{kind}:{login}"
    keys = _throttle_keys(account_key, address, limit)
    await _check_throttle(keys, now)
    if not login or not await verify_secret(stored["hash"] if stored else None, secret or ""):
        await _record_failure(list(keys), now)
        raise SignInRefused(refusal)
    await _clear_failures(_fitting(account_key))
    principal = await load_principal(kind, stored["id"])  # type: ignore[index]
    if principal is None:
        raise SignInRefused(refusal)
    return principal


async def sign_in_patron(card_number: str, pin: str, address: str, now: dt.datetime, limit: int) -> Principal:
    card_number = normalise_card_number(card_number)
    row = await Patron.select(Patron.id, Patron.pin_hash.as_alias("hash")).where(
        Patron.card_number == card_number
    ).first()
    return await _sign_in("patron", card_number, pin, row, "bad_credentials", address, now, limit)


async def sign_in_staff(username: str, password: str, address: str, now: dt.datetime, limit: int) -> Principal:
    username = normalise_username(username)
    row = await StaffMember.select(StaffMember.id, StaffMember.password_hash.as_alias("hash")).where(
        (StaffMember.username == username) & (StaffMember.active == True)  # noqa: E712
    ).first()
    return await _sign_in("staff", username, password, row, "bad_staff_credentials", address, now, limit)


async def load_principal(kind: str, account_id: int, with_config_version: bool = False) -> Principal | None:
    """The signed-in person as they are now: a deactivated account is signed out.

    Runs on every request, so it is one plain query (with the children, or the branches,
    joined in) rather than two of Piccolo's in a transaction, read at once (`db.read_now`: on
    SQLite, on the event loop rather than through a connection's thread). `with_config_version`: the
    same query reads the configuration's version for the rest of the request
    (library.config_cache), which a checkout would otherwise ask for on its own.
    """
    version = f", {config_cache.VERSION_COLUMN}" if with_config_version else ""
    if kind == "patron":
        rows = await read_now(Statement(
            f"SELECT p.id, p.uuid, p.name, p.language, g.child{version} FROM patron p "
            "LEFT JOIN guardian_link g ON g.guardian = p.id WHERE p.id = {}", (account_id,)))
        if not rows:
            return None
        if with_config_version:
            config_cache.read_with_request(rows[0]["config_version"])
        return Principal(
            kind="patron",
            id=rows[0]["id"],
            uuid=str(rows[0]["uuid"]),
            name=rows[0]["name"],
            language=rows[0]["language"],
            children_ids=frozenset(row["child"] for row in rows if row["child"] is not None),
        )
    if kind == "staff":
        rows = await read_now(Statement(
            f"SELECT s.id, s.uuid, s.display_name, s.language, s.role, s.all_branches, b.branch{version} "
            "FROM staff_member s LEFT JOIN staff_branch b ON b.staff = s.id WHERE s.id = {} AND s.active = {}",
            (account_id, True)))
        if not rows:
            return None
        if with_config_version:
            config_cache.read_with_request(rows[0]["config_version"])
        staff = rows[0]
        return Principal(
            kind="staff",
            id=staff["id"],
            uuid=str(staff["uuid"]),
            name=staff["display_name"],
            language=staff["language"],
            role=staff["role"],
            branch_ids=frozenset(row["branch"] for row in rows if row["branch"] is not None),
            all_branches=bool(staff["all_branches"]),
        )
    return None


# --- patrons ------------------------------------------------------------------


@dataclass(frozen=True)
class NewPatron:
    card_number: str
    name: str
    pin: str
    home_branch_code: str
    category: str = "adult"
    birth_date: dt.date | None = None
    phone: str = ""
    email: str = ""
    language: str = "zh_CN"
    expires_on: dt.date | None = None
    guardian_card_number: str | None = None


def _with_placeholder_pin(new: NewPatron) -> NewPatron:
    from dataclasses import replace

    return replace(new, pin="0000")


def _validate_new_patron(new: NewPatron) -> None:
    if not normalise_card_number(new.card_number):
        raise InvalidInput("required", field="card_number")
    if not new.name.strip():
        raise InvalidInput("required", field="name")
    if len(new.name) > 100:
        raise InvalidInput("name_too_long", field="name", limit=100)
    if new.category not in ("adult", "child", "senior"):
        raise InvalidInput("invalid_category", field="category")
    if new.language not in LANGUAGES:
        raise InvalidInput("invalid_language", field="language")
    problem = rules.pin_problem(new.pin)
    if problem:
        raise InvalidInput(problem, field="pin")


async def create_patron(new: NewPatron, actor: str, today: dt.date, pin_hash: str | None = None,
                        registered_by: Principal | None = None) -> int:
    """Register a reader; a child may be linked to a guardian in the same step.

    `pin_hash` carries a PIN already hashed elsewhere (a reader moved from another
    system or node keeps their PIN); otherwise `new.pin` is checked and hashed.
    `registered_by`: staff register readers only into the branches they work for.
    """
    if registered_by is not None:
        branch = await Branch.select(Branch.id).where(Branch.code == new.home_branch_code).first()
        if branch is None or not registered_by.works_for(branch["id"]):
            raise InvalidInput("required", field="home_branch")
    if pin_hash is None:
        _validate_new_patron(new)
        pin_hash = await hash_secret(new.pin)
    else:
        _validate_new_patron(_with_placeholder_pin(new))
    card_number = normalise_card_number(new.card_number)

    async def work() -> int:
        branch = await Branch.select(Branch.id).where(Branch.code == new.home_branch_code).first()
        if branch is None:
            raise NotFound("branch_not_found", field="home_branch", code=new.home_branch_code)
        guardian = None
        if new.guardian_card_number:
            guardian_card = normalise_card_number(new.guardian_card_number)
            guardian = await Patron.select(Patron.id, Patron.category).where(
                Patron.card_number == guardian_card
            ).first()
            if guardian is None:
                raise NotFound("patron_not_found", field="guardian_card_number", card_number=guardian_card)
        rows = await Patron.insert(
            Patron(
                card_number=card_number,
                name=new.name.strip(),
                pin_hash=pin_hash,
                home_branch=branch["id"],
                category=new.category,
                birth_date=new.birth_date,
                phone=new.phone.strip(),
                email=new.email.strip(),
                language=new.language,
                expires_on=new.expires_on or rules.default_card_expiry(today),
            )
        ).returning(Patron.id)
        patron_id = rows[0]["id"]
        if guardian is not None:
            problem = rules.guardian_link_problem(guardian["id"], guardian["category"], patron_id)
            if problem:
                raise InvalidInput(problem, field="guardian_card_number")
            await GuardianLink.insert(GuardianLink(guardian=guardian["id"], child=patron_id))
        await audit.record(actor, "patron.created", f"patron:{card_number}", category=new.category)
        return patron_id

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("card_number_taken", field="card_number", card_number=card_number) from None
        raise


async def link_guardian(guardian_card: str, child_card: str, actor: str, relationship: str = "") -> None:
    guardian_card, child_card = normalise_card_number(guardian_card), normalise_card_number(child_card)

    async def work() -> None:
        guardian = await Patron.select(Patron.id, Patron.category).where(Patron.card_number == guardian_card).first()
        if guardian is None:
            raise NotFound("patron_not_found", card_number=guardian_card)
        child = await Patron.select(Patron.id).where(Patron.card_number == child_card).first()
        if child is None:
            raise NotFound("patron_not_found", card_number=child_card)
        problem = rules.guardian_link_problem(guardian["id"], guardian["category"], child["id"])
        if problem:
            raise InvalidInput(problem)
        exists = await GuardianLink.exists().where(
            (GuardianLink.guardian == guardian["id"]) & (GuardianLink.child == child["id"])
        )
        if not exists:
            await GuardianLink.insert(
                GuardianLink(guardian=guardian["id"], child=child["id"], relationship=relationship)
            )
            await audit.record(actor, "guardian.linked", f"patron:{child_card}", guardian=guardian_card)

    await run_in_write_transaction(work)


def _patron_view(row: dict[str, Any], today: dt.date) -> dict[str, Any]:
    return {
        "id": row["id"],
        "uuid": str(row["uuid"]),
        "card_number": row["card_number"],
        "name": row["name"],
        "category": row["category"],
        "birth_date": row["birth_date"],
        "age": rules.age_on(row["birth_date"], today) if row["birth_date"] else None,
        "home_branch": row.get("home_branch.code"),
        "home_branch_name_zh": row.get("home_branch.name_zh"),
        "home_branch_name_en": row.get("home_branch.name_en"),
        "language": row["language"],
        "expires_on": row["expires_on"],
        "expired": row["expires_on"] < today,
        "block_reason": row["block_reason"],
        "phone": row["phone"],
        "email": row["email"],
    }


_PATRON_COLUMNS = (
    Patron.id,
    Patron.uuid,
    Patron.card_number,
    Patron.name,
    Patron.category,
    Patron.birth_date,
    Patron.language,
    Patron.expires_on,
    Patron.block_reason,
    Patron.phone,
    Patron.email,
    Patron.home_branch.code,
    Patron.home_branch.name_zh,
    Patron.home_branch.name_en,
)


async def household(principal: Principal, today: dt.date) -> dict[str, Any]:
    """A reader's own card and the children they may act for (and, for a child, the guardians)."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    async with read_transaction():
        me = await Patron.select(*_PATRON_COLUMNS).where(Patron.id == principal.id).first()
        if me is None:
            raise NotFound("patron_not_found", card_number="?")
        children = []
        if principal.children_ids:
            children = await Patron.select(*_PATRON_COLUMNS).where(
                Patron.id.is_in(list(principal.children_ids))
            ).order_by(Patron.birth_date)
        guardians = await GuardianLink.select(GuardianLink.guardian.name).where(GuardianLink.child == principal.id)
    return {
        "me": _patron_view(me, today),
        "children": [_patron_view(child, today) for child in children],
        "guardians": [row["guardian.name"] for row in guardians],
    }


async def patron_acted_for(principal: Principal, subject_card: str) -> int:
    """The patron id a reader may act for, or a refusal: the guardian notion in one place."""
    card = normalise_card_number(subject_card)
    subject = await Patron.select(Patron.id).where(Patron.card_number == card).first()
    if subject is None or not principal.is_patron or not rules.may_act_for(
        principal.id, subject["id"], principal.children_ids
    ):
        raise NotPermitted("not_guardian")
    return subject["id"]


async def find_patrons(principal: Principal, query: str, today: dt.date, limit: int = 50) -> list[dict[str, Any]]:
    """Staff look readers up by card number or name.

    A card number finds its reader wherever they are registered (one card works at
    every branch); browsing and name search cover the readers of one's own branches.
    """
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    query = (query or "").strip()
    mine = None if principal.all_branches else Patron.home_branch.is_in(list(principal.branch_ids) or [-1])
    condition = mine
    if query:
        by_name = contains_text(Patron.name, query)
        condition = (Patron.card_number == normalise_card_number(query)) | (by_name & mine if mine else by_name)
    select = Patron.select(*_PATRON_COLUMNS).order_by(Patron.name).limit(limit)
    if condition is not None:
        select = select.where(condition)
    rows = await select
    return [_for_staff(principal, _patron_view(row, today)) for row in rows]


def _for_staff(principal: Principal, view: dict[str, Any]) -> dict[str, Any]:
    """A reader's phone and e-mail only for staff who may see them (not volunteers: `readers.contact`)."""
    if not permissions.may(principal, "readers.contact"):
        view.update(phone=None, email=None, contact_hidden=True)
    return view


# --- staff ----------------------------------------------------------------------


async def create_staff(
    username: str,
    display_name: str,
    password: str,
    role: str,
    branch_codes: list[str],
    actor: str,
    all_branches: bool = False,
    language: str = "zh_CN",
    password_hash: str | None = None,
) -> int:
    username = normalise_username(username)
    if not username:
        raise InvalidInput("required", field="username")
    if not display_name.strip():
        raise InvalidInput("required", field="display_name")
    if role not in permissions.ROLES:
        raise InvalidInput("invalid_role", field="role")
    if language not in LANGUAGES:
        raise InvalidInput("invalid_language", field="language")
    if password_hash is None:
        problem = rules.password_problem(password)
        if problem:
            raise InvalidInput(problem, field="password", length=rules.MIN_PASSWORD_LENGTH)
        password_hash = await hash_secret(password)

    async def work() -> int:
        branch_ids = []
        for code in branch_codes:
            branch = await Branch.select(Branch.id).where(Branch.code == code).first()
            if branch is None:
                raise NotFound("branch_not_found", field="branches", code=code)
            branch_ids.append(branch["id"])
        rows = await StaffMember.insert(
            StaffMember(
                username=username,
                display_name=display_name.strip(),
                role=role,
                all_branches=all_branches,
                language=language,
                password_hash=password_hash,
            )
        ).returning(StaffMember.id)
        staff_id = rows[0]["id"]
        if branch_ids:
            await StaffBranch.insert(*[StaffBranch(staff=staff_id, branch=branch_id) for branch_id in branch_ids])
        await audit.record(actor, "staff.created", f"staff:{username}", role=role, branches=branch_codes)
        return staff_id

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("username_taken", field="username", username=username) from None
        raise


# --- reader cards at the desk, and the reader's own PIN ----------------------------

BLOCK_REASON_LIMIT = 500


async def patron_card(principal: Principal, card_number: str, today: dt.date) -> dict[str, Any]:
    """What a desk sees of a reader who shows their card: any branch serves any card."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    card = normalise_card_number(card_number)
    async with read_transaction():
        row = await Patron.select(*_PATRON_COLUMNS).where(Patron.card_number == card).first()
        if row is None:
            raise NotFound("patron_not_found", card_number=card)
        children = await GuardianLink.select(
            GuardianLink.child.card_number, GuardianLink.child.name
        ).where(GuardianLink.guardian == row["id"]).order_by(GuardianLink.child.birth_date)
        guardians = await GuardianLink.select(
            GuardianLink.guardian.card_number, GuardianLink.guardian.name
        ).where(GuardianLink.child == row["id"])
    view = _for_staff(principal, _patron_view(row, today))
    view["children"] = [{"card_number": c["child.card_number"], "name": c["child.name"]} for c in children]
    view["guardians"] = [{"card_number": g["guardian.card_number"], "name": g["guardian.name"]} for g in guardians]
    return view


async def reset_pin(principal: Principal, card_number: str, new_pin: str) -> None:
    """Staff set a new PIN for a reader who has forgotten theirs (the reader is at the desk)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    problem = rules.pin_problem(new_pin)
    if problem:
        raise InvalidInput(problem, field="pin")
    card = normalise_card_number(card_number)
    pin_hash = await hash_secret(new_pin)

    async def work() -> None:
        updated = await Patron.update({Patron.pin_hash: pin_hash}).where(Patron.card_number == card).returning(
            Patron.id
        )
        if not updated:
            raise NotFound("patron_not_found", card_number=card)
        await _pin_set(updated[0]["id"], principal.audit_name)
        await audit.record(principal.audit_name, "patron.pin_reset", f"patron:{card}")

    await run_in_write_transaction(work)


async def _pin_set(patron_id: int, set_by: str) -> None:
    """Every PIN set is kept (who and when, never the PIN); on a branch node this row is also what
    carries the change to the central node (library.sync: a `pin_change`, not a reader's row)."""
    await PinChange.insert(PinChange(patron=patron_id, set_by=set_by[:160],
                                     set_at=dt.datetime.now(dt.timezone.utc)))


async def set_block(principal: Principal, card_number: str, reason: str | None) -> None:
    """Block a card with a reason the reader will see, or lift the block (reason None)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    card = normalise_card_number(card_number)
    if reason is not None:
        reason = reason.strip()
        if not reason:
            raise InvalidInput("required", field="block_reason")
        if len(reason) > BLOCK_REASON_LIMIT:
            raise InvalidInput("reason_too_long", field="block_reason", limit=BLOCK_REASON_LIMIT)

    async def work() -> None:
        updated = await Patron.update({Patron.block_reason: reason}).where(Patron.card_number == card).returning(
            Patron.id
        )
        if not updated:
            raise NotFound("patron_not_found", card_number=card)
        action = "patron.blocked" if reason is not None else "patron.unblocked"
        await audit.record(principal.audit_name, action, f"patron:{card}", reason=reason)

    await run_in_write_transaction(work)


async def change_own_pin(principal: Principal, current_pin: str, new_pin: str, repeated_pin: str) -> None:
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    problem = rules.pin_problem(new_pin)
    if problem:
        raise InvalidInput(problem, field="new_pin")
    if new_pin != repeated_pin:
        raise InvalidInput("pins_differ", field="repeated_pin")
    row = await Patron.select(Patron.pin_hash).where(Patron.id == principal.id).first()
    if row is None or not await verify_secret(row["pin_hash"], current_pin or ""):
        raise InvalidInput("current_pin_wrong", field="current_pin")
    pin_hash = await hash_secret(new_pin)

    async def work() -> None:
        await Patron.update({Patron.pin_hash: pin_hash}).where(Patron.id == principal.id)
        await _pin_set(principal.id, "reader")
        await audit.record(principal.audit_name, "patron.pin_changed", f"patron:{principal.uuid}")

    await run_in_write_transaction(work)
