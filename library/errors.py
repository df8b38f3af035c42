"""The domain's errors, their messages, and nothing about HTTP.

A service raises a `DomainError` with a reason code and parameters; the one
mapping in `library.web.errors` turns it into a problem body for the API or a
message on a page, in the reader's language. Messages are English ids that the
Babel catalogs translate.
"""

from __future__ import annotations

from typing import Any

from library.i18n import N_, gettext

MESSAGES: dict[str, str] = {
    # input
    "invalid_input": N_("The input is not valid."),
    "required": N_("This field is required."),
    "invalid_date": N_("Enter a date as YYYY-MM-DD."),
    "invalid_language": N_("Choose Chinese (zh_CN) or English (en)."),
    "date_out_of_range": N_("The date must be within {days} days of today."),
    "period_closes_before_opening": N_("An opening period must close after it opens."),
    # branches
    "branch_not_found": N_("There is no branch with the code {code}."),
    "calendar_exception_exists": N_("{day} already has an entry in this branch's calendar."),
    "calendar_exception_not_found": N_("{day} has no entry in this branch's calendar."),
    "reason_too_long": N_("The reason may be at most {limit} characters long."),
    # accounts
    "bad_credentials": N_("The card number or PIN is not correct."),
    "bad_staff_credentials": N_("The username or password is not correct."),
    "signin_throttled": N_("Too many failed sign-ins. Try again in {seconds} seconds."),
    "card_number_taken": N_("The card number {card_number} is already in use."),
    "username_taken": N_("The username {username} is already in use."),
    "patron_not_found": N_("There is no reader with the card number {card_number}."),
    "pin_format": N_("A PIN is 4 to 12 digits."),
    "pins_differ": N_("The two new PINs differ."),
    "current_pin_wrong": N_("The current PIN is not correct."),
    "password_too_short": N_("A password needs at least {length} characters."),
    "guardian_must_be_adult": N_("A guardian must be an adult or senior reader."),
    "guardian_of_self": N_("A reader cannot be their own guardian."),
    "not_guardian": N_("You can act only for yourself and the children linked to your card."),
    "invalid_category": N_("The category must be adult, child or senior."),
    "invalid_role": N_("The role must be librarian or administrator."),
    "name_too_long": N_("The name may be at most {limit} characters long."),
    # rights
    "sign_in_required": N_("Please sign in first."),
    "staff_only": N_("This page is for library staff."),
    "patron_only": N_("This page is for readers signed in with their card."),
    "administrator_only": N_("Only an administrator may do this."),
    "not_your_branch": N_("You do not work for the branch {code}."),
}


class DomainError(Exception):
    """A refusal with a reason code; `field` names the form field it belongs to."""

    status = 400
    title = N_("The request cannot be carried out")

    def __init__(self, reason: str, /, *, field: str | None = None, **params: Any) -> None:
        if reason not in MESSAGES:
            raise KeyError(f"no message for reason code {reason!r}")
        super().__init__(reason)
        self.code = reason
        self.field = field
        self.params = params

    def message(self) -> str:
        """The message in the current request's language."""
        return gettext(MESSAGES[self.code]).format(**self.params)

    def translated_title(self) -> str:
        return gettext(self.title)


class InvalidInput(DomainError):
    status = 422
    title = N_("Some input is not valid")


class NotFound(DomainError):
    status = 404
    title = N_("Not found")


class Conflict(DomainError):
    status = 409
    title = N_("Conflict")


class NotSignedIn(DomainError):
    status = 401
    title = N_("Sign-in required")


class NotPermitted(DomainError):
    status = 403
    title = N_("Not permitted")


class SignInRefused(DomainError):
    status = 401
    title = N_("Sign-in failed")


class TooManyAttempts(DomainError):
    status = 429
    title = N_("Too many attempts")

    def __init__(self, reason: str, /, *, retry_after: int, **params: Any) -> None:
        super().__init__(reason, seconds=retry_after, **params)
        self.retry_after = retry_after
