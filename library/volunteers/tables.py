"""Volunteers: who they are (a staff account with the role "volunteer"), the shifts staff plan,
and who signed up for which shift, with the times they came and went.

A volunteer's name and branches are those of their staff account; the profile keeps only what
that account does not say (the reader they also are, if they say so): a reader's data is stored
once, and as little of it as the job needs.
"""

from __future__ import annotations

from enum import Enum

from piccolo.columns import UUID, ForeignKey, Integer, Timestamp, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from library.accounts.tables import Patron, StaffMember
from library.activities.tables import Occurrence
from library.branches.tables import Branch, _utc_now


class ShiftKind(str, Enum):
    desk = "desk"
    after_school = "after_school"  # 课后看护: children doing their homework after school
    activity_helper = "activity_helper"


class VolunteerProfile(Table):
    """The volunteer's staff account, and the reader (Patron) they also are, if linked."""

    uuid = UUID(unique=True)
    staff = ForeignKey(references=StaffMember, null=False, unique=True, on_delete=OnDelete.cascade)
    patron = ForeignKey(references=Patron, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class Shift(Table):
    """A shift at a branch, on the branch's wall clock (`local_*`) and in UTC (`*_at`).

    `taken` counts the sign-ups and only a conditional UPDATE moves it (library.volunteers.service):
    the check below is the database's word that a shift never has more volunteers than it needs.
    """

    uuid = UUID(unique=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    kind = Varchar(length=24, choices=ShiftKind, default=ShiftKind.desk)
    # An activity helper's shift may be for one session; the session going leaves the shift.
    occurrence = ForeignKey(references=Occurrence, null=True, default=None, on_delete=OnDelete.set_null)
    local_start = Timestamp(required=True)
    local_end = Timestamp(required=True)
    starts_at = Timestamptz(required=True, index=True)
    ends_at = Timestamptz(required=True)
    needed = Integer(default=1)
    taken = Integer(default=0)
    note = Varchar(length=200, default="")
    planned_by = Varchar(length=160, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    shift_head_count_check = Check('"needed" >= 1 AND "taken" >= 0 AND "taken" <= "needed"')
    shift_times_check = Check('"ends_at" > "starts_at"')


class ShiftSignUp(Table):
    """A volunteer signed up for a shift; checked in and out (or corrected by staff)."""

    uuid = UUID(unique=True)
    shift = ForeignKey(references=Shift, null=False, on_delete=OnDelete.cascade)
    volunteer = ForeignKey(references=StaffMember, null=False, on_delete=OnDelete.restrict)
    signed_up_at = Timestamptz(required=True)
    checked_in_at = Timestamptz(null=True, default=None)
    checked_out_at = Timestamptz(null=True, default=None)
    # Who last set the times by hand (an audit name), empty when the volunteer's own scans stand.
    corrected_by = Varchar(length=160, default="")
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    shift_sign_up_unique = Unique([shift, volunteer])
    shift_sign_up_times_check = Check(
        '"checked_out_at" IS NULL OR ("checked_in_at" IS NOT NULL AND "checked_out_at" >= "checked_in_at")')
