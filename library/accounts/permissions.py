"""Who may do what, as data: the staff roles, the permission matrix and `may()`.

Every route declares in its `opt` what it needs (`opt={"permission": "loans.lend"}`), or that
it is for everyone, for readers or for anyone signed in (the audiences below); one check
(library/web/auth.py, run before every handler) reads it. Where the branch is known only from the form, the controller
or service asks `may(principal, name, branch_id)` — the same function, with the branch.

docs/permissions.md is `permission_table()`'s output (`library permissions`); a test keeps
the two the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from library.accounts.principal import Principal

ADMINISTRATOR = "administrator"
LIBRARIAN = "librarian"
VOLUNTEER = "volunteer"
# Most rights first; a new role is one more name here and a column in the matrix.
ROLES = (ADMINISTRATOR, LIBRARIAN, VOLUNTEER)

# A route may add `"reader": True` to its permission: a reader may call it too (for their own and
# their children's things), staff need the permission — `/api/loans`, for instance.
READERS_TOO = "reader"

# Audiences: what a route may declare instead of a staff permission.
PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed_in"  # a reader or a staff member; the service decides what each may see
READER = "reader"  # a reader signed in with their card
# A credential the handler checks itself: a branch node's (sync), a kiosk's, Prometheus's token.
CREDENTIAL = "credential"
AUDIENCES = (PUBLIC, SIGNED_IN, READER, CREDENTIAL)


@dataclass(frozen=True)
class Permission:
    name: str
    roles: frozenset[str]
    # Bound: held only at the branches the staff member works for (Principal.works_for).
    branch_bound: bool
    meaning: str


_ALL = frozenset(ROLES)
_STAFF = frozenset({ADMINISTRATOR, LIBRARIAN})
_ADMIN = frozenset({ADMINISTRATOR})


def _p(name: str, roles: frozenset[str], branch_bound: bool, meaning: str) -> Permission:
    return Permission(name, roles, branch_bound, meaning)


PERMISSIONS: dict[str, Permission] = {p.name: p for p in (
    _p("desk.use", _ALL, False, "see the staff pages: the desk, hold shelf, circulation rules, "
                                "calendars, the activity plan"),
    _p("loans.lend", _ALL, True, "lend at the desk and print the slip"),
    _p("loans.return", _ALL, True, "take returns at the desk"),
    _p("transits.receive", _ALL, True, "receive books in transit and see the transit list"),
    _p("activities.check_in", _ALL, True, "check attendees of a session in"),
    _p("selfcheck.help", _ALL, True, "help readers at the self-check: the stations of the branch"),
    _p("readers.view", _ALL, False, "find a reader and see their card, status and block "
                                    "(without contact details or loan history)"),
    _p("loans.renew", _STAFF, True, "renew a reader's loans at the desk"),
    _p("loans.override", _STAFF, True, "lend despite a refusal (blocked card, limit reached)"),
    _p("readers.contact", _STAFF, False, "see readers' phone numbers and e-mail addresses"),
    _p("readers.loan_history", _STAFF, False, "see readers' loans, past loans and a loan's details"),
    _p("readers.register", _STAFF, True, "register a new reader"),
    _p("readers.edit", _STAFF, False, "set a reader's PIN, block or unblock, link children (any branch serves "
                                      "any card)"),
    _p("readers.close", _STAFF, True, "close the account of a reader of the branch, when they asked"),
    _p("readers.export", _STAFF, False, "download lists of readers (challenge participants, ...)"),
    _p("records.edit", _STAFF, False, "catalogue: records, copies, imports, duplicates, MARC, labels"),
    _p("records.export", _STAFF, False, "download the catalogue"),
    _p("calendars.edit", _STAFF, True, "add and remove a branch's closures and special openings"),
    _p("activities.plan", _STAFF, True, "schedule, move and cancel sessions; attendance lists"),
    _p("selfcheck.manage", _STAFF, True, "issue and revoke self-check stations"),
    _p("reports.view", _STAFF, False, "statistics and the annual return"),
    _p("sync.run", _STAFF, False, "see sync status, run a round, resolve conflicts, send transfers"),
    _p("volunteers.plan", _STAFF, True, "plan shifts, see everyone's hours and their CSV"),
    _p("volunteers.serve", frozenset({VOLUNTEER}), True, "sign up for shifts, check in and out, own hours "
                                                            "and certificate"),
    _p("rules.edit", _ADMIN, False, "change the circulation rules"),
    _p("sources.edit", _ADMIN, False, "the copy-cataloguing targets (other libraries' catalogues)"),
    _p("sync.manage", _ADMIN, False, "request transfers and issue branch nodes' credentials"),
    _p("staff.manage", _ADMIN, False, "create staff accounts and set their roles"),
)}


def may(principal: Principal | None, permission: str, branch_id: int | None = None) -> bool:
    """Whether `principal` holds `permission` (at `branch_id`, when the permission is bound to
    branches and the branch is known). An unknown name is refused, never let through."""
    if permission == PUBLIC:
        return True
    if permission == SIGNED_IN:
        return principal is not None
    if permission == READER:
        return principal is not None and principal.is_patron
    found = PERMISSIONS.get(permission)
    if found is None or principal is None or not principal.is_staff or principal.role not in found.roles:
        return False
    if found.branch_bound and branch_id is not None:
        return principal.works_for(branch_id)
    return True


def declared_permission(opt: dict | None) -> str | None:
    """What a route handler's `opt` declares; None when it declares nothing."""
    value = (opt or {}).get("permission")
    return value if isinstance(value, str) and (value in PERMISSIONS or value in AUDIENCES) else None


def readers_too(opt: dict | None) -> bool:
    """Whether a route with a staff permission lets readers in as well (`"reader": True`)."""
    return (opt or {}).get(READERS_TOO) is True


def permission_table() -> str:
    """The matrix as Markdown: docs/permissions.md is this, word for word."""
    lines = [
        "# Permissions",
        "",
        "Generated from `library/accounts/permissions.py` by `library permissions`; a test fails when",
        "this file differs from what the code says. Every route declares one of these permissions, or",
        "an audience: `public` (anyone), `signed_in` (a reader or staff), `reader` (a reader with their",
        "card), `credential` (a branch node's, a kiosk's or Prometheus's credential, checked by the",
        "handler). A route may add `\"reader\": True`: a reader too (for their own loans), staff only with",
        "the permission. \"at own branches\": held only at the branches the staff member works for.",
        "",
        "| permission | " + " | ".join(ROLES) + " | where | meaning |",
        "|---|" + "---|" * len(ROLES) + "---|---|",
    ]
    for p in PERMISSIONS.values():
        marks = " | ".join("yes" if role in p.roles else "—" for role in ROLES)
        where = "at own branches" if p.branch_bound else "every branch"
        lines.append(f"| `{p.name}` | {marks} | {where} | {p.meaning} |")
    return "\n".join(lines) + "\n"
