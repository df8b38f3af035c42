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
    "control_characters": N_("{name} holds a control character (such as NUL) that no text may contain."),
    "body_required": N_("The request has no data: send it in the body."),
    "date_beyond_calendar": N_("The calendar covers the years {first} to {last}."),
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
    "managed_by_guardian": N_("A child's account is managed by their guardian: ask them to make this change."),
    "invalid_email": N_("Enter an e-mail address such as name@example.com."),
    "invalid_phone": N_("Enter a phone number of digits (spaces, hyphens and a leading + are allowed)."),
    "closure_loans_open": N_("The account can be closed once its {count} borrowed books are returned."),
    "invalid_category": N_("The category must be adult, child or senior."),
    "invalid_role": N_("The role must be librarian or administrator."),
    "name_too_long": N_("The name may be at most {limit} characters long."),
    # catalogue
    "isbn_empty": N_("Scan or type an ISBN."),
    "isbn_length": N_("An ISBN has 10 or 13 digits; this has {length}."),
    "isbn_characters": N_("This is not an ISBN: only digits, hyphens and a final X are allowed."),
    "isbn_check_digit": N_("The check digit is wrong: it should be {expected}. Check the number on the book."),
    "isbn_prefix": N_("A 13-digit ISBN starts with 978 or 979; this barcode is not a book's ISBN."),
    "too_long": N_("This may be at most {limit} characters long."),
    "year_out_of_range": N_("The year must be between 1400 and {latest}."),
    "age_out_of_range": N_("An age must be between 0 and 18."),
    "age_range_reversed": N_("The youngest age must not be above the oldest."),
    "pages_out_of_range": N_("The number of pages must be between 1 and 10000."),
    "invalid_choice": N_("Choose one of the offered values."),
    "invalid_role_of_contributor": N_("Unknown contributor role: {role}."),
    "not_a_number": N_("Enter a whole number."),
    "not_a_price": N_("Enter a price such as 35.80."),
    "record_exists": N_("The catalogue already has a record for ISBN {isbn}."),
    "record_has_no_incoming_marc": N_("This record did not come in as MARC: there is no incoming version to take."),
    "record_not_found": N_("There is no such record in the catalogue."),
    "item_not_found": N_("There is no copy with the barcode {barcode}."),
    "barcode_format": N_("A barcode has 3 to 32 letters, digits or hyphens."),
    "barcode_check_digit": N_("The barcode {barcode} has a wrong check digit."),
    "barcode_taken": N_("The barcode {barcode} is already on another copy."),
    "barcodes_repeated": N_("The barcode {barcode} was scanned twice."),
    "copies_count": N_("Add between 1 and {limit} copies at a time."),
    "item_not_withdrawable": N_("This copy cannot be withdrawn while it is {status}."),
    "withdraw_reason_required": N_("Say why the copy is withdrawn."),
    "marc_not_marc": N_("This file is not MARC (ISO 2709 or MARCXML)."),
    "marc_empty": N_("The file holds no records."),
    "upload_too_large": N_("The file is larger than {limit} MB."),
    "cover_type": N_("A cover must be a JPEG, PNG or WebP image."),
    # copy cataloguing: what a target did instead of answering (library.catalog.sources)
    "source_timeout": N_("{target} did not answer within {seconds} seconds."),
    "source_unreachable": N_("{target} could not be reached (no connection to {host})."),
    "source_garbage": N_("{target} answered something that is not a catalogue record; its answer was set aside."),
    "source_refused": N_("{target} refused the search: {detail}"),
    "source_unavailable": N_("{target} cannot be asked: this server has no Z39.50 library (libyaz5)."),
    "source_failed": N_("{target} could not answer: {detail}"),
    "source_query_empty": N_("Give an ISBN, or a title, author or publisher to look for."),
    "source_query_charset": N_("{target} cannot read this text in its character set."),
    "target_not_found": N_("There is no such catalogue to copy from."),
    "target_host": N_("Give the server's name or IP address only (no http:// and no path)."),
    "target_name_taken": N_("A catalogue named {name} is configured already."),
    "copy_not_genuine": N_("This record did not come from the catalogue it names; look it up again."),
    # circulation
    "card_blocked": N_("The card is blocked: {reason}"),
    "card_expired": N_("The card expired on {day}; it can be renewed at the desk."),
    "loan_limit": N_("The reader already has {limit} books out, the most this card allows."),
    "item_not_loanable": N_("This copy is for use in the library only."),
    "item_held_for_other": N_("This copy is set aside for another reader's hold."),
    "item_on_loan": N_("This copy is already on loan; return it first."),
    "item_in_transit": N_("This copy is in transit; receive it first."),
    "item_withdrawn": N_("This copy has been withdrawn."),
    "item_unavailable": N_("This copy is not available for loan."),
    "hold_waiting": N_("Someone is waiting for this book."),
    "renewal_limit": N_("Renewed {count} times already; the limit is {limit}."),
    "too_overdue": N_("{days} days overdue; a loan more than {limit} days overdue cannot be renewed."),
    "renewal_not_needed": N_("Renewing now would not extend the loan beyond {day}."),
    "holds_not_allowed": N_("This book cannot be placed on hold."),
    "no_copies_to_hold": N_("The library has no copy of this book that can be lent."),
    "already_borrowed": N_("You have a copy of this book on loan already."),
    "hold_exists": N_("You already have a hold on this book."),
    "no_circulation_rule": N_("No circulation rule covers this loan; an administrator must add one."),
    "loan_not_found": N_("There is no such loan."),
    "not_on_loan": N_("The copy {barcode} was not on loan."),
    "hold_not_found": N_("There is no such hold."),
    "hold_not_cancellable": N_("This hold is already {status}."),
    "transit_not_found": N_("The copy {barcode} is not in transit."),
    "transit_elsewhere": N_("The copy {barcode} is travelling to {branch}, not to this branch."),
    "override_comment_required": N_("Write why you override: {reasons}"),
    "comment_too_long": N_("A comment may be at most {limit} characters long."),
    "rule_scope_taken": N_("A rule for {scope} exists already."),
    "rule_not_found": N_("There is no such circulation rule."),
    "network_rule_required": N_("The network-wide rule cannot be removed: every loan needs a rule."),
    "number_out_of_range": N_("Enter a number from {low} to {high}."),
    "refused": N_("Refused."),
    # activities
    "room_not_found": N_("The branch has no room {code}."),
    "occurrence_not_found": N_("There is no such session."),
    "event_not_found": N_("There is no such event."),
    "registration_not_found": N_("There is no such registration."),
    "registration_not_active": N_("This registration is already {status}."),
    "choose_someone": N_("Choose who to register."),
    "ends_before_start": N_("The end must be after the start."),
    "rrule_unbounded": N_("A repeating event needs an end: a number of sessions or a last date."),
    "rrule_too_many": N_("A series may have at most {limit} sessions within three years."),
    "rrule_invalid": N_("The repeat rule is not valid."),
    "rrule_empty": N_("The repeat rule gives no session at all."),
    "capacity_too_small": N_("A session needs at least one seat."),
    "over_room_capacity": N_("{room} holds {room_capacity}; {capacity} seats do not fit."),
    "fewer_seats_than_registered": N_("{confirmed} people are registered; the session cannot shrink to {capacity}."),
    "room_taken": N_("{room} is taken at {day} by {other}."),
    "outside_opening_hours": N_("{day} is outside the branch's opening hours."),
    "session_cancelled": N_("This session is cancelled."),
    "session_past": N_("This session has already taken place."),
    "no_registration_needed": N_("No registration is needed: just come."),
    "registration_not_open": N_("Registration opens at {opens_at}."),
    "registration_closed": N_("Registration is closed."),
    "too_young": N_("{name} is {age}; this session is for ages {min} to {max}."),
    "too_old": N_("{name} is {age}; this session is for ages {min} to {max}."),
    "age_unknown": N_("{name}'s birth date is not on the card; the desk can add it."),
    "already_registered": N_("{name} is already registered."),
    "challenge_not_finished": N_("The certificate comes with the goal: {goal}."),
    "offer_lapsed": N_("The offered seat is no longer held; you are welcome to register again."),
    "programme_not_found": N_("There is no such reading programme."),
    "outside_programme": N_("The programme runs from {starts} to {ends}."),
    "session_limit": N_("{name} already has {limit} sessions in this programme, the most allowed."),
    "check_in_not_open": N_("Check-in opens at {opens_at}, {minutes} minutes before the session starts."),
    "check_in_closed": N_("Check-in closed at {closed_at}, {minutes} minutes after the session ended."),
    "not_registered": N_("{name} is not registered for this session."),
    "session_not_in_programme": N_("That session is not one of this programme's sessions still to come."),
    "choose_a_session": N_("Choose at least one session."),
    "programme_no_sessions": N_("No session of this programme is still open for registration."),
    "not_registered_family": N_("Neither {name} nor a child linked to the card is registered for this session."),
    "check_in_waitlisted": N_("{name} is on the waitlist and has no seat at this session."),
    "check_in_offer_lapsed": N_("{name} was offered a seat but did not take it in time."),
    "check_in_registration_cancelled": N_("{name}'s registration for this session was cancelled."),
    # rights
    "sign_in_required": N_("Please sign in first."),
    "staff_only": N_("This page is for library staff."),
    "patron_only": N_("This page is for readers signed in with their card."),
    "administrator_only": N_("Only an administrator may do this."),
    "not_for_your_role": N_("Your role does not allow this."),
    "not_your_branch": N_("You do not work for the branch {code}."),
    # branch sync
    "sync_payload": N_("The sync data is malformed: {detail}"),
    "sync_cursor": N_("The sync cursor is not valid; start again with an empty cursor."),
    "sync_credential": N_("The sync credential is missing, unknown or revoked."),
    "sync_other_branch": N_("This credential is for {code}; it cannot read or write another branch's data."),
    "sync_not_central": N_("This node is not the central library's node."),
    "sync_not_configured": N_("Sync is not set up on this node: set LIBRARY_CENTRAL_URL and LIBRARY_SYNC_CREDENTIAL."),
    "sync_failed": N_("The central library could not be reached: {why}"),
    "sync_throttled": N_("Too many sync requests from this branch. Try again in {seconds} seconds."),
    "transfer_not_found": N_("There is no such transfer."),
    "transfer_state": N_("This transfer was already sent or cancelled."),
    "transfer_same_branch": N_("The copy {barcode} is already at {code}."),
    "transfer_copy_busy": N_("The copy {barcode} is {status}; it can be transferred once it is back on a shelf."),
    "conflict_not_found": N_("There is no such conflict."),
    # Catalogue imports (library.catalog.batches).
    "import_batch_not_found": N_("There is no such import."),
    "import_not_staged": N_("This import is not waiting to be committed (it is {status})."),
    "import_not_committed": N_("Only a committed import can be undone (this one is {status})."),
    "import_file_missing": N_("The file of this import is no longer there: upload it again."),
    "import_too_big": N_("The file is too big: at most {limit} MB."),
    # Possible duplicates (library.catalog.duplicates).
    "duplicate_not_found": N_("There is no such possible duplicate: one of its records may have been merged or "
                              "deleted meanwhile."),
    "duplicate_kept_apart": N_("This pair was already kept apart as two different books."),
    "duplicate_merged": N_("This pair was already merged."),
    "duplicate_keep_which": N_("Choose which of the two records to keep."),
    "duplicate_holds_set_aside": N_("The reader {card_number} has a copy set aside on each of the two records: "
                                    "let one be collected, or cancel one of the holds, then merge."),
    "duplicate_not_cataloguer": N_("Only the network's cataloguers (staff working for every branch) and "
                                   "administrators may merge records or keep them apart."),
    "duplicate_at_branch_node": N_("The central library's cataloguers decide on duplicate records: merge them at "
                                   "the central library."),
    "duplicate_refused_by_database": N_("The records could not be merged: {why}"),
    # Self-service (library.selfcheck).
    "kiosk_not_found": N_("There is no kiosk account {login}."),
    "station_not_found": N_("There is no such self-check station."),
    # Statistics (library.reports).
    "unknown_report_branch": N_("Choose one of the branches you work for."),
    "invalid_report_period": N_("Choose a year (2026), a month (2026-03) or a day (2026-03-08)."),
    # Volunteers (library.volunteers).
    "shift_not_found": N_("There is no such volunteer shift."),
    "sign_up_not_found": N_("There is no such sign-up."),
    "volunteer_not_found": N_("There is no volunteer account {username} at this branch."),
    "shift_full": N_("This shift has all the volunteers it needs."),
    "shift_already_signed_up": N_("{name} is already signed up for this shift."),
    "shift_started": N_("This shift has started: sign-ups and withdrawals are closed."),
    "shift_not_volunteer": N_("Only volunteer accounts sign up for shifts."),
    "shift_not_yours": N_("A volunteer acts on their own sign-ups only."),
    "shift_not_planner": N_("Only the staff of the branch plan shifts and see everyone's hours."),
    "shift_bad_times": N_("The shift must end after it starts, on the same day."),
    "shift_bad_kind": N_("Choose desk, after-school supervision or activity helper."),
    "shift_bad_head_count": N_("A shift needs between 1 and {limit} volunteers."),
    "shift_checked_in_already": N_("Already checked in at {time}."),
    "shift_check_in_closed": N_("Check-in opens {minutes} minutes before the shift and closes at its end."),
    "shift_not_checked_in": N_("Check in first."),
    "shift_checked_out_already": N_("Already checked out at {time}."),
    "shift_withdraw_after_check_in": N_("Checked in already: ask the staff to correct the times instead."),
    "shift_bad_correction": N_("The check-out must come after the check-in, at most {hours} hours later."),
    "shift_wrong_session": N_("An activity helper's shift may point at a session of its own branch only."),
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


class InvalidRecord(InvalidInput):
    """Every problem of a record at once, each with its field."""

    def __init__(self, problems: list[tuple[str, str, dict]]) -> None:
        field, code, params = problems[0]
        super().__init__(code, field=field, **params)
        self.problems = [InvalidInput(c, field=f, **p) for f, c, p in problems]

    def message(self) -> str:
        return " ".join(problem.message() for problem in self.problems)

    def by_field(self) -> dict[str, str]:
        messages: dict[str, str] = {}
        for problem in self.problems:
            messages[problem.field or ""] = (messages.get(problem.field or "", "") + " " + problem.message()).strip()
        return messages


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


class CirculationRefused(Conflict):
    """A checkout, renewal or hold refused for one or more reasons, all of them listed."""

    title = N_("Refused")

    def __init__(self, refusals, /, **params: Any) -> None:
        super().__init__("refused", **params)
        self.refusals = list(refusals)

    def reasons(self) -> list[dict[str, Any]]:
        return reason_views(self.refusals)

    def message(self) -> str:
        return " ".join(reason["message"] for reason in self.reasons())


def _shown(value: Any) -> Any:
    """Rules keep dates as ISO text (they travel in JSON); a reader sees them in their language."""
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        import datetime as dt

        from library.i18n import format_date

        try:
            return format_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    return value


def reason_views(refusals) -> list[dict[str, Any]]:
    """Refusals (anything with code, params, overridable) as messages in the current language."""
    return [
        {"code": refusal.code,
         "message": gettext(MESSAGES[refusal.code]).format(**{k: _shown(v) for k, v in refusal.params.items()}),
         "overridable": refusal.overridable}
        for refusal in refusals
    ]
