"""What the central node does with a branch's change: pure decisions on images, no database.

A branch box is the least trusted node of the network (a small computer in a community
room, which can be broken into or stolen), so the central node takes from it only what that
branch is entitled to change. The authority, kind by kind (docs/sync.md has the same table):

| change from branch B | B may make it when | otherwise |
|---|---|---|
| a copy's circulation (status, where it is, due date) | the copy is in B's hands: on B's shelf (current branch B), on loan from B or owned by B (a reader returns it anywhere), or travelling to or from B | `copy_elsewhere` |
| a copy's shelf, type, price | B owns it (home branch) or catalogued it | kept central (no conflict) |
| a new copy | home and current branch are B | `copy_elsewhere` |
| a new loan | lent at B, of a copy in B's hands | `not_this_branch`, `copy_elsewhere` |
| a renewal or return | the loan was made at B, or the copy is in B's hands | `not_this_branch` |
| a new hold | pickup at B, and an item it was given (if any) is in B's hands | `not_this_branch`, `copy_elsewhere` |
| a change to a hold | pickup at B, or B traps a copy in its hands for it | `not_this_branch` |
| a transit | sent from B of a copy in its hands; received only by its destination | `not_this_branch` |
| a new reader | registered with home branch B | `reader_elsewhere` |
| an edit to a reader | the reader's home branch is B, and only the desk's fields (name, birth date, category, phone, e-mail, language, card expiry, block); card number, home branch and PIN verifier stay | `reader_elsewhere`; `concurrent_edit` |
| a PIN change | the reader's home branch is B, or B holds the reader's verifier (the reader borrowed there) | `reader_elsewhere` |
| a guardian link | the child's home branch is B | `reader_elsewhere` |

Readers are edited only by their home branch (where they registered), not by any desk they
walk up to: a desk that may edit every reader lets a stolen box rewrite the city's readers.
A reader from elsewhere asks at their home branch or the central library; what a desk did
anyway is kept as a conflict that central staff can apply by hand.

Time: a branch's clock is not trusted. Its timestamps are never taken beyond the central
node's clock plus a small allowed skew (`clamp_times`), and which of two edits of a reader
wins does not look at timestamps at all: the branch says up to which point of the central
node's log it had seen (`seen_through`); a central change after that point which the branch
did not make itself is a concurrent edit — the central version stands and the branch's is
kept for staff.

Each decision is the row to write, or a reason code (the conflict's rule, shown to staff)
and whether that conflict needs nobody (`resolved`). Images are rows as JSON with references
as uuids (see entities.py); `branch` is the uploading branch's uuid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IN_HAND = ("on_loan", "in_transit")  # not on any shelf: the branch that handles it has it
CIRCULATION = ("status", "current_branch", "due_back", "updated_at")
COPY_DETAILS = ("shelf_location", "item_type", "price_cents", "acquired_on", "withdrawn_reason")
ACTIVE_HOLD = ("waiting", "in_transit", "ready")
# What a branch desk may change of a reader registered there; the rest is the central node's
# (card number and home branch) or has its own operation (the PIN verifier, `pin_change`).
READER_DESK_FIELDS = ("name", "birth_date", "category", "phone", "email", "language", "expires_on",
                      "block_reason", "updated_at")
# What a branch may change of a hold it serves, of a transit it handles.
HOLD_FIELDS = ("status", "item", "ready_at", "expires_on", "closed_at", "updated_at")
TRANSIT_FIELDS = ("received_at", "updated_at")

Image = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    row: Image | None = None  # what to write; None: write nothing
    refusal: str | None = None  # the conflict's rule, when the branch's change is not taken
    resolved: bool = False  # a conflict the rule settles by itself (staff need not act)


@dataclass(frozen=True)
class Place:
    """Where a copy is, as the central node knows it: its image and the ends of its open journeys."""

    item: Image
    travelling_between: frozenset[str] = field(default_factory=frozenset)  # branch uuids of open transits


def in_hands_of(place: Place, branch: str) -> bool:
    """Whether the copy is physically with `branch`, as far as the central node can tell.

    On B's shelf (or hold shelf, or being processed there); on loan from B, or on loan and
    owned by B (its reader may bring it back to B: return anywhere); travelling to or from B.
    A copy on another branch's shelf is not B's to lend, return or send.
    """
    item = place.item
    if item["status"] == "in_transit":
        return branch in place.travelling_between or item["current_branch"] == branch
    if item["status"] == "on_loan":
        return branch in (item["current_branch"], item["home_branch"])
    return item["current_branch"] == branch


def new_copy(image: Image, branch: str) -> Decision:
    """A branch catalogues only copies of its own, standing on its own shelf."""
    if image["home_branch"] != branch or image["current_branch"] != branch:
        return Decision(refusal="copy_elsewhere")
    return Decision(row=image)


def copy_change(place: Place, image: Image, branch: str, made_here: bool) -> Decision:
    """A change to a copy the central node has. Home branch and record stay central (a rotation
    reassigns the home); the branch holding the copy decides its circulation; its home branch
    (or the branch that made it) its shelf, type and price."""
    current = place.item
    if not in_hands_of(place, branch):
        return Decision(refusal="copy_elsewhere")
    merged = dict(current)
    merged.update({key: image[key] for key in CIRCULATION})
    if current["home_branch"] == branch or made_here:
        merged.update({key: image[key] for key in COPY_DETAILS})
    return Decision(row=merged)


def loan_change(current: Image | None, image: Image, branch: str, place: Place | None) -> Decision:
    """A loan from a branch (a new one already checked against the copy's other open loan).

    A branch lends only for itself and only a copy in its hands; it may touch another
    branch's loan only of a copy in its hands (a return anywhere); returned is final; who
    lent, which copy and to whom never change. `place` is the copy's, after the copy's own
    change in the same upload was decided (a checkout sends both).
    """
    if current is None:
        if image["branch"] != branch:
            return Decision(refusal="not_this_branch")
        if place is None or not in_hands_of(place, branch):
            return Decision(refusal="copy_elsewhere")
        return Decision(row=image)
    if current["returned_at"] is not None:
        if image["returned_at"] != current["returned_at"] or image["renewals"] != current["renewals"]:
            return Decision(refusal="already_returned", resolved=True)
        return Decision()
    if current["branch"] != branch and (place is None or not in_hands_of(place, branch)):
        return Decision(refusal="not_this_branch")
    return Decision(row={**image, "branch": current["branch"], "item": current["item"], "patron": current["patron"],
                         "checked_out_at": current["checked_out_at"]})


def hold_change(current: Image | None, image: Image, branch: str, place: Place | None) -> Decision:
    """A hold from a branch. A branch places holds for pickup at its own desk; it changes a hold
    it serves (pickup there), or traps a copy in its hands for anyone's hold. A hold closed
    centrally (cancelled, expired) stays closed: the branch had not heard. `place`: the copy
    the branch's image gives the hold, if any."""
    gives_copy = image.get("item") is not None and (current is None or image["item"] != current.get("item"))
    if gives_copy and (place is None or not in_hands_of(place, branch)):
        return Decision(refusal="copy_elsewhere")
    if current is None:
        if image["pickup_branch"] != branch:
            return Decision(refusal="not_this_branch")
        return Decision(row=image)
    if current["status"] not in ACTIVE_HOLD and image["status"] in ACTIVE_HOLD:
        return Decision(refusal="hold_closed", resolved=True)
    if current["pickup_branch"] != branch and not gives_copy:
        return Decision(refusal="not_this_branch")
    merged = dict(current)
    merged.update({key: image[key] for key in HOLD_FIELDS})
    return Decision(row=merged)


def transit_change(current: Image | None, image: Image, branch: str, place: Place | None) -> Decision:
    """A branch sends copies in its hands; a journey is received by its destination (or, when
    the copy comes back unsent, by the sender)."""
    if current is None:
        if image["from_branch"] != branch:
            return Decision(refusal="not_this_branch")
        if place is None or not in_hands_of(place, branch):
            return Decision(refusal="copy_elsewhere")
        return Decision(row=image)
    if branch not in (current["from_branch"], current["to_branch"]):
        return Decision(refusal="not_this_branch")
    if current["received_at"] is not None:
        return Decision()  # received is final
    merged = dict(current)
    merged.update({key: image[key] for key in TRANSIT_FIELDS})
    return Decision(row=merged)


def new_reader(image: Image, branch: str) -> Decision:
    """A branch registers readers into its own branch only."""
    if image["home_branch"] != branch:
        return Decision(refusal="reader_elsewhere")
    return Decision(row=image)


WITHHELD = ("phone", "email")  # what a branch is not given of readers it does not serve (feed.PRIVATE_FIELDS)


def reader_change(current: Image, image: Image, branch: str, concurrent: bool) -> Decision:
    """An edit to a reader both nodes have: only the home branch edits, only the desk's fields;
    a central change the branch had not seen when it edited wins (`concurrent`).

    A reader from elsewhere whose row the branch sends unchanged (its PIN set at the desk goes
    as a `pin_change`; a field it was never given reads empty there) is no edit at all."""
    if current["home_branch"] != branch:
        edited = [key for key in READER_DESK_FIELDS if key != "updated_at" and image[key] != current[key]
                  and not (key in WITHHELD and image[key] == "")]
        return Decision(refusal="reader_elsewhere") if edited else Decision()
    if concurrent:
        return Decision(refusal="concurrent_edit")
    merged = dict(current)
    merged.update({key: image[key] for key in READER_DESK_FIELDS})
    return Decision(row=merged)


def pin_change_allowed(reader: Image, branch: str, holds_verifier: bool) -> Decision:
    """A PIN set at a branch: for its own readers (a reset at the desk) or a reader whose verifier
    it was given (the reader proved the old PIN there)."""
    if reader["home_branch"] == branch or holds_verifier:
        return Decision(row=reader)
    return Decision(refusal="reader_elsewhere")


def guardian_link_allowed(child: Image | None, branch: str) -> Decision:
    """A link lets the guardian act for the child everywhere: only the child's home branch makes
    or removes it."""
    if child is None or child["home_branch"] != branch:
        return Decision(refusal="reader_elsewhere")
    return Decision(row=child)


def is_concurrent(latest_seq: int | None, seen_through: int, last_writer: tuple[str, int] | None,
                  branch: str) -> bool:
    """Whether the central node changed an entity after the branch last saw it (its log position
    `seen_through`) by something other than the branch's own upload (`last_writer`: the branch
    whose upload wrote it last, and the log position that write left)."""
    if latest_seq is None or latest_seq <= seen_through:
        return False
    return last_writer != (branch, latest_seq)


def clamp_times(image: Image, columns: Iterable[str], latest: dt.datetime) -> tuple[Image, float]:
    """The image with every timestamp later than `latest` (the central node's clock plus the allowed
    skew) brought back to it, and by how many seconds the furthest one was ahead (0 if none)."""
    ahead = 0.0
    clamped = image
    for column in columns:
        value = image.get(column)
        if not isinstance(value, str):
            continue
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is not None and moment > latest:
            ahead = max(ahead, (moment - latest).total_seconds())
            if clamped is image:
                clamped = dict(image)
            clamped[column] = latest.isoformat()
    return clamped, ahead
