"""The audit paths of audit.md over HTTP: logs, checkpoints, proofs an auditor checks with nothing
but the public key, entries for auditors, and a volunteer's proof of their own transfer."""

from __future__ import annotations

import base64

import pytest

from api.deps import Services
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from ledger.audit.leaf import leaf_hash
from ledger.audit.merkle import verify_consistency, verify_inclusion
from ledger.audit.note import Signer
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from tests.api.conftest import Client, World


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _publish(services: Services, world: World) -> tuple[Signer, Checkpoint]:
    """Sign the log's current head with a test key, as the checkpoint job does with the real one."""
    c = world.community_id
    size, root = services.audit.ingest(c)
    signer = Signer.from_seed(services.audit.origin(c), bytes(range(32)))
    checkpoint = Checkpoint(services.audit.origin(c), size, root)
    services.audit.store_checkpoint(c, size, root, sign_checkpoint(checkpoint, signer))
    return signer, checkpoint


def _award(services: Services, world: World, key: str) -> None:
    services.ledger.transfer(
        TransferRequest(
            world.community_id,
            "award",
            (Posting(world.issuance, Unit.POINTS, -1), Posting(world.other_account, Unit.POINTS, 1)),
            key,
        )
    )


def test_checkpoint_and_proofs_verify_with_the_public_key_only(
    client: Client, world: World, api_services: Services
) -> None:
    c = world.community_id
    assert client.get(f"/audit/v1/logs/{c}/checkpoint").json()["code"] == "NOT_YET_CHECKPOINTED"
    signer, first = _publish(api_services, world)
    response = client.get(f"/audit/v1/logs/{c}/checkpoint")  # public: no token
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    checkpoint = verify_checkpoint(response.content, signer.verifier(), origin=first.origin)
    assert checkpoint.size == first.size == 2  # the world's two awards
    logs = {x["log_id"]: x for x in client.get("/audit/v1/logs").json()}
    assert logs[c] == {"log_id": c, "origin": first.origin, "tree_size": 2}

    for index in range(checkpoint.size):
        body = client.get(
            f"/audit/v1/logs/{c}/proof/inclusion", params={"index": index, "tree_size": 2}
        ).json()
        assert (body["index"], body["tree_size"]) == (index, 2)
        verify_inclusion(
            index, 2, _b(body["leaf_hash"]), [_b(h) for h in body["hashes"]], checkpoint.root_hash
        )

    _award(api_services, world, "later-1")
    _award(api_services, world, "later-2")
    _, second = _publish(api_services, world)
    body = client.get(f"/audit/v1/logs/{c}/proof/consistency", params={"old_size": 2, "new_size": 4}).json()
    assert (body["old_size"], body["new_size"]) == (2, 4)
    verify_consistency(2, 4, first.root_hash, second.root_hash, [_b(h) for h in body["hashes"]])


def test_proofs_beyond_the_signed_checkpoint_are_refused(
    client: Client, world: World, api_services: Services
) -> None:
    c = world.community_id
    _publish(api_services, world)
    _award(api_services, world, "unsigned")
    api_services.audit.ingest(c)  # folded into the tree, but not yet signed
    response = client.get(f"/audit/v1/logs/{c}/proof/inclusion", params={"index": 2, "tree_size": 3})
    assert (response.status_code, response.json()["code"]) == (409, "NOT_YET_CHECKPOINTED")
    bad = client.get(f"/audit/v1/logs/{c}/proof/inclusion", params={"index": 5, "tree_size": 2})
    assert 400 <= bad.status_code < 500


@pytest.mark.parametrize(
    ("who", "status"), [("auditor", 200), ("volunteer", 403), ("shop_clerk", 403), (None, 401)]
)
def test_entries_are_for_auditors(client: Client, world: World, who: str | None, status: int) -> None:
    headers = world.auth(who) if who else {}
    response = client.get(
        f"/audit/v1/logs/{world.community_id}/entries", params={"start": 0, "end": 2}, headers=headers
    )
    assert response.status_code == status
    if status == 200:
        entries = response.json()["entries"]
        assert [e["index"] for e in entries] == [0, 1]
        assert all(_b(e["leaf_hash"]) == leaf_hash(_b(e["leaf"])) for e in entries)


def test_keys_are_public(client: Client) -> None:
    body = client.get("/audit/v1/keys").json()
    assert set(body) == {"logs", "witnesses"}


def test_a_volunteer_proves_their_own_transfer(client: Client, world: World, api_services: Services) -> None:
    c = world.community_id
    own = api_services.accounts.statement(c, world.own_account)[0].transfer_id
    path = f"/api/v1/communities/{c}/transfers/{own}/proof"
    assert client.get(path, headers=world.auth("volunteer")).json()["code"] == "NOT_YET_CHECKPOINTED"
    signer, checkpoint = _publish(api_services, world)
    body = client.get(path, headers=world.auth("volunteer")).json()
    note = verify_checkpoint(body["checkpoint"].encode(), signer.verifier(), origin=checkpoint.origin)
    receipt = body["receipt"]
    assert receipt["log_id"] == c and body["tree_size"] == note.size
    verify_inclusion(
        receipt["index"], note.size, _b(receipt["leaf_hash"]), [_b(h) for h in body["hashes"]], note.root_hash
    )
    other = f"/api/v1/communities/{c}/transfers/{world.other_transfer}/proof"
    assert client.get(other, headers=world.auth("volunteer")).status_code == 404  # someone else's
    assert client.get(other, headers=world.auth("auditor")).status_code == 200


def test_keys_publish_every_key_a_log_has_had(
    world: World, api_services: Services, tmp_path: pytest.TempPathFactory, pool: object
) -> None:
    """After a rotation the old key stays listed with the size it retired at, so old notes verify."""
    import dataclasses  # noqa: PLC0415

    from litestar.testing import TestClient  # noqa: PLC0415

    from api.app import create_app  # noqa: PLC0415
    from ledger.audit.note import parse_verifier_key  # noqa: PLC0415
    from ledger.config import Settings  # noqa: PLC0415
    from vledger.wiring import audit_keys, build_checkpoints  # noqa: PLC0415

    checkpoints = build_checkpoints(api_services.audit, pool, Settings(data_dir=tmp_path))  # type: ignore[arg-type]
    first = checkpoints.publish(world.community_id, force=True)
    assert first is not None
    _award(api_services, world, "before-rotation")
    checkpoints.rotate_key(world.community_id)
    app = create_app(
        dataclasses.replace(api_services, audit_keys=audit_keys(checkpoints)), access_logging=False
    )
    with TestClient(app=app) as client:
        logs = [
            k
            for k in client.get("/audit/v1/keys").json()["logs"]
            if k["origin"] == api_services.audit.origin(world.community_id)
        ]
        assert [(k["valid_from_size"], k["retired_at_size"]) for k in logs] == [(0, 3), (3, None)]
        old = parse_verifier_key(logs[0]["vkey"])
        verify_checkpoint(first.note, old, origin=logs[0]["origin"])  # the first note, signed by the old key
        latest = client.get(f"/audit/v1/logs/{world.community_id}/checkpoint").content
        verify_checkpoint(latest, parse_verifier_key(logs[1]["vkey"]), origin=logs[1]["origin"])
