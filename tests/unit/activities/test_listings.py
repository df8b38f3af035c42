"""The account page's pure choices: what a past registration says, whose challenge is linked."""

import pytest

from library.activities.listings import attendance, challengers


@pytest.mark.parametrize("status, shown", [
    ("attended", "attended"),
    ("confirmed", "no_show"),  # a seat never checked in
    ("offered", "no_show"),  # an offer still open when the session ended
    ("no_show", "no_show"),
])
def test_a_past_seat_is_either_attended_or_a_no_show(status, shown):
    assert attendance(status) == shown


MOTHER = {"card_number": "ZX10000001", "category": "adult"}
GIRL = {"card_number": "ZX10000002", "category": "child"}
BOY = {"card_number": "ZX10000003", "category": "child"}


@pytest.mark.parametrize("household, followed", [
    ({"me": MOTHER, "children": [GIRL, BOY]}, [GIRL, BOY]),
    ({"me": GIRL, "children": []}, [GIRL]),  # a child signed in on her own card
    ({"me": MOTHER, "children": []}, []),
])
def test_the_account_links_the_challenge_of_whoever_takes_part(household, followed):
    assert challengers(household) == followed
