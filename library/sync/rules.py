"""What the central node does with a branch's change: pure decisions on images, no database.

Each decision is the row to write, or a reason code (the conflict's rule, shown to staff)
and whether that conflict needs nobody (`resolved`). Images are rows as JSON with references
as uuids (see entities.py); `branch` is the uploading branch's uuid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

IN_HAND = ("on_loan", "in_transit")  # not on any shelf: the branch that handles it has it
CIRCULATION = ("status", "current_branch", "due_back", "updated_at")
COPY_DETAILS = ("shelf_location", "item_type", "price_cents", "acquired_on", "withdrawn_reason")
ACTIVE_HOLD = ("waiting", "in_transit", "ready")

Image = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    row: Image | None = None  # what to write; None: write nothing
    refusal: str | None = None  # the conflict's rule, when the branch's change is not taken
    resolved: bool = False  # a conflict the rule settles by itself (staff need not act)


def holds_copy(item: Image, branch: str) -> bool:
    """The branch where a copy physically is: the one the central node last saw holding it, or
    any branch while the copy is out on loan or travelling (it comes back wherever it is returned)."""
    return item["current_branch"] == branch or item["status"] in IN_HAND


def copy_change(current: Image, image: Image, branch: str, made_here: bool) -> Decision:
    """A change to a copy the central node has. Home branch and record stay central (a rotation
    reassigns the home); the branch holding the copy decides its circulation; its home branch
    (or the branch that made it) its shelf, type and price."""
    if not holds_copy(current, branch):
        return Decision(refusal="copy_elsewhere")
    merged = dict(current)
    merged.update({key: image[key] for key in CIRCULATION})
    if current["home_branch"] == branch or made_here:
        merged.update({key: image[key] for key in COPY_DETAILS})
    return Decision(row=merged)


def loan_change(current: Image | None, image: Image, branch: str, item: Image | None) -> Decision:
    """A loan from a branch (a new one already checked against the copy's other open loan).

    A branch lends only for itself; it may touch another branch's loan only of a copy it holds
    (a return anywhere); returned is final; who lent, which copy and to whom never change.
    """
    if current is None:
        return Decision(row=image) if image["branch"] == branch else Decision(refusal="not_this_branch")
    if current["returned_at"] is not None:
        if image["returned_at"] != current["returned_at"] or image["renewals"] != current["renewals"]:
            return Decision(refusal="already_returned", resolved=True)
        return Decision()
    if current["branch"] != branch and (item is None or not holds_copy(item, branch)):
        return Decision(refusal="not_this_branch")
    return Decision(row={**image, "branch": current["branch"], "item": current["item"], "patron": current["patron"]})


def hold_change(current: Image | None, image: Image) -> Decision:
    """A hold closed centrally (cancelled, expired) stays closed: the branch had not heard."""
    if current is not None and current["status"] not in ACTIVE_HOLD and image["status"] in ACTIVE_HOLD:
        return Decision(refusal="hold_closed", resolved=True)
    return Decision(row=image)


def reader_change(current: Image, image: Image) -> Decision:
    """An edit to a reader both nodes have: the newer edit wins; else the branch takes the central one."""
    if dt.datetime.fromisoformat(image["updated_at"]) > dt.datetime.fromisoformat(current["updated_at"]):
        return Decision(row=image)
    return Decision(refusal="older_edit", resolved=True)
