"""Session cookies: decrypted once per cookie, never trusted more than Litestar trusts them."""

import time

from library.web.sessions import SteadyCookieBackend, SteadyCookieConfig


def backend(max_age: int = 3600) -> SteadyCookieBackend:
    return SteadyCookieBackend(config=SteadyCookieConfig(secret=b"k" * 32, key="s", max_age=max_age))


def test_a_cookie_decrypts_to_its_session_every_time_without_sharing_the_dict():
    sessions = backend()
    cookie = sessions.dump_data({"kind": "staff", "id": 7})
    first = sessions.load_data(cookie)
    first["id"] = 8  # a handler changing its session does not change what the next request reads
    assert sessions.load_data(cookie) == {"kind": "staff", "id": 7}


def test_a_value_changed_inside_the_session_is_not_changed_in_the_cache_too():
    """The self-check visit appends each scan to a list inside its session, in place: the cached
    session stayed the same object underneath, so the next request read the change as if it had
    arrived, and the unchanged-cookie check saw nothing to send (the scans were lost)."""
    sessions = backend()
    cookie = sessions.dump_data({"selfcheck": {"results": []}})
    first = sessions.load_data(cookie)
    first["selfcheck"]["results"].append({"kind": "lent"})
    assert sessions.load_data(cookie) == {"selfcheck": {"results": []}}


def test_a_tampered_cookie_is_refused_even_after_the_genuine_one_was_read():
    sessions = backend()
    cookie = sessions.dump_data({"kind": "staff", "id": 7})
    sessions.load_data(cookie)
    raw = bytearray(cookie[0])
    raw[20] = ord("A") if raw[20] != ord("A") else ord("B")
    try:
        tampered = sessions.load_data([bytes(raw)])
    except Exception:  # noqa: BLE001 - InvalidTag or a decoding error, as without the cache
        tampered = None
    assert not tampered


def test_an_expired_cookie_is_refused_although_it_was_read_before(monkeypatch):
    sessions = backend(max_age=60)
    cookie = sessions.dump_data({"kind": "patron", "id": 1})
    assert sessions.load_data(cookie)
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert sessions.load_data(cookie) == {}
