"""Certificates for the API tests: the world's posted records (records_world) under a signed checkpoint
(a test key), and a certificate of the other person, made through the services."""

from __future__ import annotations

from dataclasses import dataclass

import records_world as rw  # this directory is on sys.path (rootdir-less tests)

from api.deps import Services
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.note import Signer
from tests.api.conftest import World


@dataclass(frozen=True)
class People:
    own: str  # the volunteer's person id
    other: str


def signer(w: World, s: Services) -> Signer:
    """The test key the world's log is signed with (its name is the log's origin)."""
    return Signer.from_seed(s.audit.origin(w.community_id), bytes(range(32)))


def sign(w: World, s: Services) -> int:
    """Fold the log into the tree and store a checkpoint of it signed with the test key."""
    size, root = s.audit.ingest(w.community_id)
    origin = s.audit.origin(w.community_id)
    s.audit.store_checkpoint(
        w.community_id, size, root, sign_checkpoint(Checkpoint(origin, size, root), signer(w, s))
    )
    return size


def signed(w: World, s: Services) -> People:
    """Both people have a posted record, and a signed checkpoint covers them."""
    rw.records(w, s)
    sign(w, s)
    return People(str(w.volunteer_person), str(w.other_person))


_other: dict[int, str] = {}


def other_certificate(w: World, s: Services) -> str:
    """The number of a certificate of the other person (issued once per world)."""
    number = _other.get(w.community_id)
    if number is None:
        signed(w, s)
        view = s.certificates.issue(w.community_id, w.other_person, actor_id=w.user_ids["social_worker"])
        number = _other[w.community_id] = view.number
    return number
