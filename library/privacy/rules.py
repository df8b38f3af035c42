"""Who may see and change a reader's own data, and when an account may be closed: pure decisions.

Children (个人信息保护法, art. 31: a child under 14's information is handled with a guardian's
consent). A child's account is managed by a linked guardian. Decided here:
- a child under 14 signed in with their own card may see their loans, holds, registrations and
  reading logs, and renew their loans (what the desk does for them too); they may not change
  contact details, the reading-history choice, download the data or ask to close the account:
  their guardian does, from the guardian's own "My account";
- from 14 on a reader manages their own account; a guardian still linked may act for them;
- a child with no linked guardian is managed by staff at the desk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CHILD_CONSENT_AGE = 14


def age_on(birth_date: dt.date | None, day: dt.date) -> int | None:
    if birth_date is None:
        return None
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def is_young_child(category: str, birth_date: dt.date | None, today: dt.date) -> bool:
    """Under 14 (by birth date; a child card without one counts as under 14)."""
    age = age_on(birth_date, today)
    return age < CHILD_CONSENT_AGE if age is not None else category == "child"


@dataclass(frozen=True)
class Reader:
    id: int
    category: str
    birth_date: dt.date | None


def may_see(actor: Reader, subject_id: int, children_ids: frozenset[int]) -> bool:
    """A reader sees their own data and that of the children linked to them."""
    return subject_id == actor.id or subject_id in children_ids


def may_manage(actor: Reader, subject_id: int, children_ids: frozenset[int], today: dt.date) -> str | None:
    """None if `actor` may change `subject`'s contact details, choices and account; else the reason."""
    if subject_id in children_ids:
        return None
    if subject_id != actor.id:
        return "not_guardian"
    if is_young_child(actor.category, actor.birth_date, today):
        return "managed_by_guardian"
    return None


def closure_problem(open_loans: int) -> str | None:
    """What must happen before an account can be closed: the books come back first (a loan's
    copy belongs to the library; its reader is the only way to get it back)."""
    return "closure_loans_open" if open_loans else None
