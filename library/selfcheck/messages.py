"""What a self-check machine shows a reader (SIP2 screen messages, AF), in their language.

Refusals are the loans services' reasons with their messages from `library.errors`; these
are the machine's own words around them. Message ids are English; the catalogs translate.
"""

from __future__ import annotations

from library.errors import NotFound
from library.i18n import N_, gettext

SCREEN: dict[str, str] = {
    "due_back": N_("Borrowed: {title}. Please return it by {day}."),
    "returned": N_("Returned: {title}. Thank you!"),
    "returned_late": N_("It was {days} days late."),
    "returned_home": N_("Returned: {title}. It goes back to {branch}; please leave it in the returns box."),
    "returned_hold_here": N_("Returned: {title}. A reader is waiting for it; please leave it in the returns box."),
    "returned_hold_elsewhere": N_("Returned: {title}. It travels to {branch} for a reader waiting for it."),
    "still_in_transit": N_("This copy is on its way to {branch}; please leave it in the returns box."),
    "renewed": N_("Renewed: {title}. Please return it by {day}."),
    "renewed_all": N_("Renewed {renewed}, not renewed {unrenewed}."),
    "hold_placed": N_("Hold placed on {title}: number {position} in the queue, to collect at {branch}."),
    "hold_cancelled": N_("Your hold on {title} is cancelled."),
    "hold_mode_unsupported": N_("A hold can be placed or cancelled here; to change one, ask at the desk."),
    "title_needs_item": N_("Scan the book itself: holds are placed by a copy's barcode here."),
    "pin_required": N_("Enter your PIN first."),
    "not_allowed": N_("This machine cannot do that; please ask at the desk."),
    "not_logged_in": N_("This machine is not signed in to the library system; please ask at the desk."),
    "cancel_unsupported": N_("Cancelling a transaction is not possible here; please ask at the desk."),
    "goodbye": N_("Thank you for visiting. Goodbye!"),
    "system_error": N_("Something went wrong; please ask at the desk."),
}



def kiosk_not_found(login: str) -> NotFound:
    return NotFound("kiosk_not_found", field="login", login=login)


def screen(key: str, **params: object) -> str:
    """A screen message in the current language (set per message from the reader's card)."""
    return gettext(SCREEN[key]).format(**params)
