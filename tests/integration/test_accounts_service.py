import asyncio
import datetime as dt

import pytest

from library.accounts import service
from library.accounts.tables import GuardianLink, Patron, SignInFailure
from library.branches.tables import AuditEntry
from library.demo import load_demo
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted, SignInRefused, TooManyAttempts

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


def child(card: str, guardian: str | None = "ZX10000001", **changes) -> service.NewPatron:
    values = dict(card_number=card, name="小朋友", pin="2468", home_branch_code="ZX", category="child",
                  birth_date=dt.date(2020, 1, 1), guardian_card_number=guardian)
    values.update(changes)
    return service.NewPatron(**values)


async def test_a_guardian_signs_in_and_acts_for_linked_children(demo):
    principal = await service.sign_in_patron("zx 1000 0001", "123456", "1.2.3.4", NOW, 5)
    household = await service.household(principal, TODAY)
    assert household["me"]["name"] == "王芳"
    assert [c["name"] for c in household["children"]] == ["李小米", "李小宇"]
    assert [c["age"] for c in household["children"]] == [5, 3]
    assert await service.patron_acted_for(principal, "ZX10000002") in principal.children_ids
    with pytest.raises(NotPermitted):
        await service.patron_acted_for(principal, "JX20000001")


async def test_a_child_sees_their_guardian(demo):
    principal = await service.sign_in_patron("ZX10000002", "123456", "1.2.3.4", NOW, 5)
    assert (await service.household(principal, TODAY))["guardians"] == ["王芳"]


async def test_registering_a_child_with_a_guardian(demo):
    await service.create_patron(child("ZX10000099"), actor="staff:test", today=TODAY)
    guardian = await service.sign_in_patron("ZX10000001", "123456", "1.2.3.4", NOW, 5)
    assert len(guardian.children_ids) == 3
    row = await Patron.select(Patron.expires_on, Patron.pin_hash).where(Patron.card_number == "ZX10000099").first()
    assert row["expires_on"] == dt.date(2029, 11, 28)
    assert "2468" not in row["pin_hash"] and row["pin_hash"].startswith("$argon2id$")


async def test_a_duplicate_card_is_refused_and_nothing_is_half_written(demo):
    links, audits = await GuardianLink.count(), await AuditEntry.count()
    with pytest.raises(Conflict) as refused:
        await service.create_patron(child("ZX10000002"), actor="staff:test", today=TODAY)
    assert refused.value.field == "card_number"
    assert (await GuardianLink.count(), await AuditEntry.count()) == (links, audits)


async def test_a_child_cannot_be_a_guardian_and_the_child_is_not_kept(demo):
    with pytest.raises(InvalidInput) as refused:
        await service.create_patron(child("ZX10000098", guardian="ZX10000002"), actor="t", today=TODAY)
    assert refused.value.code == "guardian_must_be_adult"
    assert not await Patron.exists().where(Patron.card_number == "ZX10000098")


async def test_an_unknown_guardian_is_named(demo):
    with pytest.raises(NotFound) as refused:
        await service.create_patron(child("ZX10000097", guardian="NOBODY"), actor="t", today=TODAY)
    assert refused.value.params == {"card_number": "NOBODY"}


@pytest.mark.parametrize(("changes", "code"), [({"pin": "12"}, "pin_format"), ({"name": " "}, "required"),
                                                 ({"category": "robot"}, "invalid_category"),
                                                 ({"language": "fr"}, "invalid_language")])
async def test_bad_registrations(demo, changes, code):
    with pytest.raises(InvalidInput) as refused:
        await service.create_patron(child("ZX10000096", **changes), actor="t", today=TODAY)
    assert refused.value.code == code


async def test_wrong_pin_and_unknown_card_look_the_same(demo):
    for card, pin in (("ZX10000001", "000000"), ("NOSUCHCARD", "123456")):
        with pytest.raises(SignInRefused) as refused:
            await service.sign_in_patron(card, pin, "1.2.3.4", NOW, 5)
        assert refused.value.code == "bad_credentials"


async def test_sign_in_is_throttled_after_five_failures_even_with_the_right_pin(demo):
    for _ in range(5):
        with pytest.raises(SignInRefused):
            await service.sign_in_patron("ZX10000001", "999999", "1.2.3.4", NOW, 5)
    with pytest.raises(TooManyAttempts) as refused:
        await service.sign_in_patron("ZX10000001", "123456", "1.2.3.4", NOW + dt.timedelta(seconds=30), 5)
    assert refused.value.retry_after == 30
    # A minute later the right PIN works again, and clears the card's failures.
    await service.sign_in_patron("ZX10000001", "123456", "1.2.3.4", NOW + dt.timedelta(seconds=61), 5)
    assert not await SignInFailure.exists().where(SignInFailure.key == "patron:ZX10000001")


async def test_one_address_guessing_many_cards_is_throttled(demo):
    for number in range(20):
        with pytest.raises(SignInRefused):
            await service.sign_in_patron(f"GUESS{number}", "000000", "6.6.6.6", NOW, 5)
    with pytest.raises(TooManyAttempts):
        await service.sign_in_patron("ZX10000001", "123456", "6.6.6.6", NOW, 5)
    # Another address is not affected.
    await service.sign_in_patron("ZX10000001", "123456", "1.2.3.4", NOW, 5)


async def test_staff_sign_in_and_deactivation(demo):
    from library.accounts.tables import StaffMember

    principal = await service.sign_in_staff(" Librarian ", "librarian-demo", "1.2.3.4", NOW, 5)
    assert principal.is_staff and not principal.is_administrator and len(principal.branch_ids) == 1
    await StaffMember.update({StaffMember.active: False}).where(StaffMember.username == "librarian")
    assert await service.load_principal("staff", principal.id) is None
    with pytest.raises(SignInRefused):
        await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)


async def test_two_desks_registering_one_card_number_at_once(demo):
    """The database, not a read-then-write, keeps card numbers unique."""
    attempts = [service.create_patron(child("ZX20000001", name=f"孩子{n}"), actor="t", today=TODAY)
                for n in range(12)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    created = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1 and len(refused) == 11, results
    assert await Patron.count().where(Patron.card_number == "ZX20000001") == 1
    assert await GuardianLink.count().where(GuardianLink.child == created[0]) == 1


async def test_staff_find_readers_of_their_branches_only(demo):
    librarian = await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)
    cards = {p["card_number"] for p in await service.find_patrons(librarian, "", TODAY)}
    assert "ZX10000001" in cards and "JX20000001" not in cards
    admin = await service.sign_in_staff("admin", "admin-demo-pass", "1.2.3.4", NOW, 5)
    assert {p["card_number"] for p in await service.find_patrons(admin, "张", TODAY)} == {"JX20000001"}
    assert [p["name"] for p in await service.find_patrons(admin, "zx10000004", TODAY)] == ["陈静"]


async def test_a_desk_finds_any_card_but_browses_only_its_branch(demo):
    librarian = await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)
    assert [p["name"] for p in await service.find_patrons(librarian, "JX20000001", TODAY)] == ["张建国"]
    assert await service.find_patrons(librarian, "张", TODAY) == []


async def test_staff_reset_a_pin_and_the_reader_signs_in_with_it(demo):
    librarian = await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)
    await service.reset_pin(librarian, "JX20000001", "5555")
    await service.sign_in_patron("JX20000001", "5555", "1.2.3.4", NOW, 5)
    with pytest.raises(SignInRefused):
        await service.sign_in_patron("JX20000001", "123456", "1.2.3.4", NOW, 5)
    assert await AuditEntry.count().where(AuditEntry.action == "patron.pin_reset") == 1


async def test_block_and_unblock(demo):
    librarian = await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)
    with pytest.raises(InvalidInput):
        await service.set_block(librarian, "ZX10000001", "   ")
    await service.set_block(librarian, "ZX10000001", "逾期未还")
    assert (await service.patron_card(librarian, "ZX10000001", TODAY))["block_reason"] == "逾期未还"
    await service.set_block(librarian, "ZX10000001", None)
    card = await service.patron_card(librarian, "ZX10000001", TODAY)
    assert card["block_reason"] is None
    assert [c["name"] for c in card["children"]] == ["李小米", "李小宇"]


async def test_a_reader_changes_their_own_pin(demo):
    reader = await service.sign_in_patron("ZX10000001", "123456", "1.2.3.4", NOW, 5)
    with pytest.raises(InvalidInput) as refused:
        await service.change_own_pin(reader, "000000", "4321", "4321")
    assert refused.value.code == "current_pin_wrong"
    with pytest.raises(InvalidInput) as refused:
        await service.change_own_pin(reader, "123456", "4321", "4322")
    assert refused.value.code == "pins_differ"
    await service.change_own_pin(reader, "123456", "4321", "4321")
    await service.sign_in_patron("ZX10000001", "4321", "1.2.3.4", NOW, 5)


async def test_staff_register_readers_only_into_their_branches(demo):
    librarian = await service.sign_in_staff("librarian", "librarian-demo", "1.2.3.4", NOW, 5)
    with pytest.raises(InvalidInput) as refused:
        await service.create_patron(child("JX20000099", guardian=None, home_branch_code="JX"), actor="t",
                                    today=TODAY, registered_by=librarian)
    assert refused.value.field == "home_branch"
    assert not await Patron.exists().where(Patron.card_number == "JX20000099")
    await service.create_patron(child("ZX20000099", guardian=None), actor="t", today=TODAY, registered_by=librarian)


async def test_a_login_longer_than_any_card_is_refused_and_counted_not_a_database_error(demo):
    """The failure counter's key has 128 characters: a 300-character 'card number' (a self-check machine
    sending garbage, or someone probing) is refused like any wrong card, and counted towards the limit."""
    garbage = "X" * 300
    for _ in range(2):
        with pytest.raises(SignInRefused):
            await service.sign_in_patron(garbage, "123456", "5.6.7.8", NOW, 2)
    with pytest.raises(TooManyAttempts):
        await service.sign_in_patron(garbage, "123456", "5.6.7.8", NOW, 2)
    keys = [row["key"] for row in await SignInFailure.select(SignInFailure.key)]
    assert keys and all(len(key) <= 128 for key in keys)
