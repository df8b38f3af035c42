"""PIN verifiers: an empty one (a reader whose verifier this branch box was not given) never matches."""

from library.accounts import hashing


def test_a_verifier_matches_its_pin_only():
    verifier = hashing.hash_secret_sync("123456")
    assert hashing._verify(verifier, "123456")
    assert not hashing._verify(verifier, "654321")


def test_an_empty_or_missing_verifier_matches_nothing_not_even_the_dummys_secret():
    # the dummy verifier stands in for a missing one (same time either way); its own secret
    # must not sign anyone in whose verifier this node does not hold
    for stored in ("", None):
        assert not hashing._verify(stored, "not-a-real-secret")
        assert not hashing._verify(stored, "123456")
