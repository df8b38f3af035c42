"""Pure decisions about people: sign-in throttling, PINs, who may act for whom."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

THROTTLE_WINDOW = dt.timedelta(minutes=1)
# A shared address (a kiosk, a school's network) gets more room than one card.
ADDRESS_LIMIT_FACTOR = 4
PIN_PATTERN = re.compile(r"^[0-9]{4,12}$")
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    retry_after_seconds: int = 0


def throttle(failures: Iterable[dt.datetime], now: dt.datetime, limit: int,
             window: dt.timedelta = THROTTLE_WINDOW) -> ThrottleDecision:
    """Refuse a sign-in attempt once `limit` failures fall within the last `window`.

    The wait is until the oldest counted failure leaves the window, so a reader who
    mistyped five times waits at most a minute, and a guesser gets `limit` tries a minute.
    """
    recent = sorted(at for at in failures if now - at < window)
    if len(recent) < limit:
        return ThrottleDecision(True)
    oldest_counted = recent[-limit]
    wait = (oldest_counted + window - now).total_seconds()
    return ThrottleDecision(False, max(1, math.ceil(wait)))


def pin_problem(pin: str) -> str | None:
    return None if PIN_PATTERN.match(pin or "") else "pin_format"


def password_problem(password: str) -> str | None:
    return None if len(password or "") >= MIN_PASSWORD_LENGTH else "password_too_short"


def may_act_for(actor_id: int, subject_id: int, children_of_actor: Iterable[int]) -> bool:
    """A reader acts for themself and for the children linked to them, nobody else."""
    return subject_id == actor_id or subject_id in set(children_of_actor)


def guardian_link_problem(guardian_id: int, guardian_category: str, child_id: int) -> str | None:
    if guardian_id == child_id:
        return "guardian_of_self"
    if guardian_category not in ("adult", "senior"):
        return "guardian_must_be_adult"
    return None


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Age in whole years on `day` (a 29 February birthday counts on 1 March)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


CARD_VALIDITY_YEARS = 3


def default_card_expiry(today: dt.date) -> dt.date:
    """A new card is valid for three years (a 29 February start ends on 28 February)."""
    try:
        return today.replace(year=today.year + CARD_VALIDITY_YEARS)
    except ValueError:
        return today.replace(year=today.year + CARD_VALIDITY_YEARS, day=28)
