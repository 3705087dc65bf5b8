"""The audit paths of audit.md (stable: auditors' tools depend on them), and a volunteer's proof
that a transfer is in their community's log."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from api.deps import Access, Services
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission

TEXT = "text/plain"  # Litestar adds "; charset=utf-8" to text/* media types
Size = Annotated[int, QueryParameter(ge=0, le=2**53 - 1)]


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class LogOut(msgspec.Struct, kw_only=True):
    log_id: int
    origin: str
    tree_size: int


class InclusionOut(msgspec.Struct, kw_only=True):
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyOut(msgspec.Struct, kw_only=True):
    old_size: int
    new_size: int
    hashes: list[str]


class EntryOut(msgspec.Struct, kw_only=True):
    index: int
    leaf: str
    leaf_hash: str


class EntriesOut(msgspec.Struct, kw_only=True):
    entries: list[EntryOut]


class KeyOut(msgspec.Struct, kw_only=True):
    origin: str
    vkey: str
    valid_from_size: int  # the key signs checkpoints of sizes valid_from_size ..
    retired_at_size: int | None  # .. retired_at_size (null: the current key)


class WitnessKeyOut(msgspec.Struct, kw_only=True):
    name: str
    vkey: str


class KeysOut(msgspec.Struct, kw_only=True):
    logs: list[KeyOut]
    witnesses: list[WitnessKeyOut]


class ReceiptOut(msgspec.Struct, kw_only=True):
    log_id: int
    index: int
    leaf_hash: str


class TransferProofOut(msgspec.Struct, kw_only=True):
    """Everything to check offline that the transfer is in the log the checkpoint commits to."""

    receipt: ReceiptOut
    tree_size: int
    hashes: list[str]
    checkpoint: str


def _signed_size(services: Services, log_id: int) -> int:
    latest = services.audit.latest_checkpoint(log_id)
    return 0 if latest is None else latest.size


def _within_signed(services: Services, log_id: int, size: int) -> None:
    signed = _signed_size(services, log_id)
    if size > signed:
        raise LedgerError(ErrorCode.NOT_YET_CHECKPOINTED, field="tree_size", tree_size=signed)


class AuditRoutes(Controller):
    path = "/audit/v1"
    tags = ("audit",)

    @get("/logs", sync_to_thread=True, summary="日志列表")
    def logs(self, services: NamedDependency[Services]) -> list[LogOut]:
        return [
            LogOut(log_id=x.log_id, origin=x.origin, tree_size=x.tree_size) for x in services.audit.logs()
        ]

    @get("/logs/{log_id:int}/checkpoint", sync_to_thread=True, media_type=TEXT, summary="最新签名检查点")
    def checkpoint(self, log_id: FromPath[int], services: NamedDependency[Services]) -> Response[bytes]:
        services.audit.origin(log_id)  # COMMUNITY_NOT_FOUND for an unknown log
        latest = services.audit.latest_checkpoint(log_id)
        if latest is None:
            raise LedgerError(ErrorCode.NOT_YET_CHECKPOINTED, log_id=log_id)
        return Response(latest.note, media_type=TEXT)

    @get("/logs/{log_id:int}/proof/inclusion", sync_to_thread=True, summary="包含性证明")
    def inclusion(
        self, log_id: FromPath[int], index: Size, tree_size: Size, services: NamedDependency[Services]
    ) -> InclusionOut:
        _within_signed(services, log_id, tree_size)
        leaf_hash, proof = services.audit.inclusion(log_id, index, tree_size)
        return InclusionOut(
            index=index, tree_size=tree_size, leaf_hash=b64(leaf_hash), hashes=[b64(h) for h in proof]
        )

    @get("/logs/{log_id:int}/proof/consistency", sync_to_thread=True, summary="一致性证明")
    def consistency(
        self, log_id: FromPath[int], old_size: Size, new_size: Size, services: NamedDependency[Services]
    ) -> ConsistencyOut:
        _within_signed(services, log_id, new_size)
        proof = services.audit.consistency(log_id, old_size, new_size)
        return ConsistencyOut(old_size=old_size, new_size=new_size, hashes=[b64(h) for h in proof])

    @get(
        "/logs/{log_id:int}/entries",
        sync_to_thread=True,
        summary="日志条目（审计员）",
    )
    def entries(
        self,
        log_id: FromPath[int],
        start: Size,
        end: Size,
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> EntriesOut:
        access.require(Permission.LOG_ENTRIES_READ, log_id)
        rows = services.audit.entries(log_id, start, end)
        return EntriesOut(
            entries=[EntryOut(index=e.index, leaf=b64(e.leaf), leaf_hash=b64(e.leaf_hash)) for e in rows]
        )

    @get("/keys", sync_to_thread=True, summary="验证公钥")
    def keys(self, services: NamedDependency[Services]) -> KeysOut:
        return KeysOut(
            logs=[
                KeyOut(origin=o, vkey=k, valid_from_size=start, retired_at_size=end)
                for o, k, start, end in services.audit_keys.logs()
            ],
            witnesses=[WitnessKeyOut(name=n, vkey=k) for n, k in services.audit_keys.witnesses()],
        )


def transfer_proof(services: Services, community_id: int, transfer_id: uuid.UUID) -> TransferProofOut:
    """The transfer's receipt, its inclusion proof at the latest signed checkpoint, and that checkpoint."""
    result = services.ledger.get_transfer(community_id, transfer_id)
    latest = services.audit.latest_checkpoint(community_id)
    index = result.receipt.index
    if latest is None or index >= latest.size:
        raise LedgerError(ErrorCode.NOT_YET_CHECKPOINTED, transfer_id=str(transfer_id))
    leaf_hash, proof = services.audit.inclusion(community_id, index, latest.size)
    return TransferProofOut(
        receipt=ReceiptOut(log_id=community_id, index=index, leaf_hash=b64(leaf_hash)),
        tree_size=latest.size,
        hashes=[b64(h) for h in proof],
        checkpoint=latest.note.decode(),
    )


class TransferProofRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/transfers"
    tags = ("transfers",)

    @get("/{transfer_id:uuid}/proof", sync_to_thread=True, summary="该笔记账已记入日志的证明")
    def proof(
        self,
        community_id: FromPath[int],
        transfer_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> TransferProofOut:
        """For staff who may read transfers, and for a volunteer whose account the transfer touches."""
        access.require_transfer(community_id, transfer_id)
        return transfer_proof(services, community_id, transfer_id)
