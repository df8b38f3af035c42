"""What the central node refuses: bad or revoked credentials, another branch's data, malformed uploads.

Each refusal is checked against the central node's database: no upload remembered, no reader
written, not one line added to the change log (every write to a replicated table logs one).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.sync.nodes import Node, new_uuid, sync

NEW_CARD = "ZX10000777"


def _client(central: Node, authorization: str | None) -> httpx.Client:
    headers = {"Accept": "application/json", "Accept-Language": "en"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.Client(base_url=central.url, headers=headers, timeout=30)


def _footprint(central: Node) -> dict[str, Any]:
    return {"log": central.value("SELECT MAX(seq) FROM sync_change"), "applied": central.count("sync_applied"),
            "patrons": central.count("patron"), "conflicts": central.count("sync_conflict"),
            "origins": central.count("sync_origin")}


@pytest.fixture
def patron_image(central: Node, credential: str) -> dict[str, Any]:
    """A reader's image as the feed gives it, made into a new reader registered at the branch."""
    with _client(central, f"Bearer {credential}") as client:
        cursor = ""
        while True:
            page = client.get("/api/sync/changes", params={"cursor": cursor, "limit": 200}).json()
            found = [c["image"] for c in page["changes"] if c["kind"] == "patron"]
            if found:
                break
            cursor = page["cursor"]
    image = copy.deepcopy(found[0])
    image.update(uuid=new_uuid(), card_number=NEW_CARD, name="钱七")
    return image


def _upload(image: dict[str, Any], *more: dict[str, Any], branch: str = "ZX") -> dict[str, Any]:
    return {"uuid": new_uuid(), "branch": branch,
            "changes": [{"kind": "patron", "uuid": image["uuid"], "image": image}, *more]}


def _malformed(image: dict[str, Any]) -> dict[str, Any]:
    other = {**copy.deepcopy(image), "uuid": new_uuid(), "card_number": "ZX10000778"}
    bad_date = {**other, "birth_date": "2019-02-30"}
    return {
        "not an object": [1, 2, 3],
        "upload uuid not a UUID": {**_upload(image), "uuid": "upload-1"},
        "changes not a list": {**_upload(image), "changes": {"kind": "patron"}},
        "unknown kind": _upload(image, {"kind": "staff_member", "uuid": new_uuid(), "image": {}}),
        "policy is not uploaded": _upload(image, {"kind": "circulation_rule", "uuid": new_uuid(), "image": None}),
        "change uuid not a UUID": _upload(image, {"kind": "patron", "uuid": "nope", "image": None}),
        "bad date": _upload(image, {"kind": "patron", "uuid": bad_date["uuid"], "image": bad_date}),
        "time without a zone": _upload(image, {"kind": "patron", "uuid": other["uuid"],
                                               "image": {**other, "updated_at": "2026-11-29T08:00:00"}}),
        "image uuid differs": _upload(image, {"kind": "patron", "uuid": new_uuid(), "image": other}),
        "column missing": _upload(image, {"kind": "patron", "uuid": other["uuid"],
                                          "image": {k: v for k, v in other.items() if k != "card_number"}}),
        "wrong type": _upload(image, {"kind": "patron", "uuid": other["uuid"], "image": {**other, "category": 7}}),
        "too many changes": {**_upload(image), "changes": [
            {"kind": "patron", "uuid": image["uuid"], "image": image}] * 1001},
    }


def test_refusals_leave_no_trace(central: Node, branch: Node, credential: str, patron_image: dict[str, Any]):
    before = _footprint(central)
    good = _upload(patron_image)
    secret = credential.split(".", 1)[1]

    # Who is asking: no credential, a wrong one, ZX's secret under another branch's code.
    for authorization in (None, "Bearer ZX.not-the-secret", f"Bearer XZ.{secret}", f"Basic {credential}",
                          credential):
        with _client(central, authorization) as client:
            assert client.post("/api/sync/uploads", json=good).status_code == 401, authorization
            assert client.get("/api/sync/changes").status_code == 401, authorization

    with _client(central, f"Bearer {credential}") as client:
        # ZX's credential asking for XZ's feed, or uploading as XZ.
        other = client.get("/api/sync/changes", params={"branch": "XZ"})
        assert other.status_code == 403 and other.json()["code"] == "sync_other_branch"
        assert client.post("/api/sync/uploads", json={**good, "branch": "XZ"}).status_code == 403
        assert client.get("/api/sync/changes", params={"cursor": "snapshot:99:0:0"}).status_code in (400, 422)

        # Malformed payloads: 422 with a problem body, and not even the good first change is written.
        not_json = client.post("/api/sync/uploads", content=b'{"uuid": "', headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422 and not_json.headers["content-type"].startswith("application/problem+json")
        for what, body in _malformed(patron_image).items():
            refused = client.post("/api/sync/uploads", json=body)
            assert refused.status_code == 422, (what, refused.text)
            assert refused.json()["code"] == "sync_payload", what
        too_big = client.post("/api/sync/uploads", content=b"[" + b" " * (17 * 1024 * 1024) + b"]",
                              headers={"Content-Type": "application/json"})
        assert too_big.status_code == 413

        assert _footprint(central) == before

        # The same credential and the good upload: applied (the refusals were about what was wrong).
        answer = client.post("/api/sync/uploads", json=good)
        assert answer.status_code == 200 and answer.json()["applied"] == 1
        assert central.count("patron", "card_number = ?", NEW_CARD) == 1

    # Revoked: refused from then on, and nothing more is applied.
    assert "1" in central.library("sync", "revoke", "--branch", "ZX").stdout
    after_good = _footprint(central)
    with _client(central, f"Bearer {credential}") as client:
        again = _upload({**patron_image, "uuid": new_uuid(), "card_number": "ZX10000779"})
        assert client.post("/api/sync/uploads", json=again).status_code == 401
        assert client.get("/api/sync/changes").status_code == 401
    assert _footprint(central) == after_good

    # The branch node with the revoked credential: its round stops and says why.
    failed = sync(branch, check=False)
    assert failed.returncode != 0 and "401" in failed.stderr and "401" in branch.state()["last_error"]
    assert branch.count("branch") == 0 and _footprint(central) == after_good

