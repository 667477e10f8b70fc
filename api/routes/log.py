"""The verifiable log over HTTP: signed checkpoints with their cosignatures, inclusion and consistency
proofs, per-event proof bundles, and the witness interface (fetch what to cosign, hand the cosignature
back). Formats: docs/merkle-and-checkpoints.md. Included by the inspector router (prefix /inspector)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from api.deps import CheckpointMaker, LogDep, Verifier, WitnessOperator
from api.errors import errors
from ledger.checkpoints import Cosignature
from ledger.errors import InvalidInput, NotFound
from ledger.transparency import CheckpointView, Transparency

router = APIRouter()

BIG = 2**63 - 1  # the stores' integer range
TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}, "description": "A C2SP signed note (UTF-8 text)."}
}
Size = Annotated[int, Path(ge=0, le=BIG, description="The checkpoint's tree size (number of events).")]
Seq = Annotated[int, Path(ge=1, le=BIG, description="The event's chain position (it is leaf seq - 1).")]
AtSize = Annotated[
    int | None, Query(ge=0, le=BIG, description="A signed checkpoint's size (default: the newest).")
]
Before = Annotated[int, Query(ge=-1, le=BIG, description="Only sizes below this (-1: from the newest).")]
WitnessSize = Annotated[int, Query(ge=0, le=BIG, description="The size the witness last cosigned (0: none).")]


class NoCheckpoint(NotFound):
    """No checkpoint has been signed yet."""

    def __init__(self) -> None:
        super().__init__("checkpoint", "latest")
        self.message = "no checkpoint has been signed yet"


class CosignatureOut(BaseModel):
    """A witness's cosignature of checkpoint `size`: who, which key (hex ID, base64 public key), when (POSIX
    seconds), and the note line."""

    size: int
    witness: str
    key_id: str
    public_key: str
    timestamp: int
    line: str
    received_at: str


class CheckpointOut(BaseModel):
    """A signed checkpoint: size, base64 root, signing key ID, when, the note with every cosignature."""

    size: int
    origin: str
    root: str
    key_id: str
    created_at: str
    note: str
    cosignatures: list[CosignatureOut]


class CheckpointList(BaseModel):
    """Checkpoints newest first; pass `before` = the last size for the next page."""

    checkpoints: list[CheckpointOut]


class InclusionOut(BaseModel):
    """Event `seq` is leaf `index` of the tree of `size` events with `root` (base64 hashes)."""

    seq: int
    index: int
    size: int
    leaf_hash: str
    path: list[str]
    root: str


class ConsistencyOut(BaseModel):
    """The tree of `old_size` events is a prefix of the one of `new_size` (RFC 9162 proof, base64)."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: list[str]


class ProofBundleOut(BaseModel):
    """One event, its inclusion path and the cosigned checkpoint: checkable alone (`lotline-verify
    --bundle`)."""

    format: str
    origin: str
    event: str
    seq: int
    index: int
    size: int
    leaf_hash: str
    path: list[str]
    root: str
    checkpoint: str


class CosignatureIn(BaseModel):
    """A checkpoint note with the witness's cosignature line, and the witness's verifier key."""

    model_config = {"extra": "forbid"}

    note: Annotated[str, Field(min_length=1, max_length=20_000)]
    witness_key: Annotated[
        str, Field(min_length=1, max_length=500, description="`name+keyid+base64(0x04 || key)`")
    ]


@router.get("/checkpoints", response_model=CheckpointList, responses=errors())
def list_checkpoints(
    user: Verifier,
    log: LogDep,
    before: Before = -1,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Signed checkpoints, newest first, with their cosignatures (inspector, QA, admin)."""
    views = log.list_checkpoints(before=before, limit=limit)
    return CheckpointList(checkpoints=[_checkpoint(v) for v in views])


@router.post("/checkpoints", response_model=CheckpointOut, responses=errors(409, 503))
def make_checkpoint(user: CheckpointMaker, log: LogDep) -> Any:
    """Sign the current tree head now (or return the newest checkpoint if it covers the head) (QA, admin).
    503 when the log has no signing key."""
    return _checkpoint(log.checkpoint())


@router.get("/checkpoints/latest", response_model=CheckpointOut, responses=errors(404))
def latest_checkpoint(user: Verifier, log: LogDep) -> Any:
    """The newest signed checkpoint with its cosignatures (inspector, QA, admin)."""
    return _checkpoint(_latest(log))


@router.get("/checkpoints/latest/note", response_class=PlainTextResponse, responses={**TEXT, **errors(404)})
def latest_note(user: Verifier, log: LogDep) -> PlainTextResponse:
    """The newest checkpoint as a C2SP signed note with every cosignature line (inspector, QA, admin)."""
    return PlainTextResponse(_latest(log).note())


@router.get("/checkpoints/{size}", response_model=CheckpointOut, responses=errors(404))
def get_checkpoint(size: Size, user: Verifier, log: LogDep) -> Any:
    """The checkpoint of `size` events with its cosignatures (inspector, QA, admin)."""
    return _checkpoint(log.get(size))


@router.get("/checkpoints/{size}/note", response_class=PlainTextResponse, responses={**TEXT, **errors(404)})
def checkpoint_note(size: Size, user: Verifier, log: LogDep) -> PlainTextResponse:
    """The checkpoint of `size` as a C2SP signed note with every cosignature line (inspector, QA, admin)."""
    return PlainTextResponse(log.get(size).note())


@router.get("/log/vkey", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {}}, "description": "`name+keyid+base64(0x01 || key)`, one a line."},
    404: errors(404)[404],
})
def verifier_key(
    log: LogDep,
    every: Annotated[
        bool, Query(alias="all", description="Every key that signed checkpoints, oldest first.")
    ] = False,
) -> PlainTextResponse:
    """The log's verifier key (vkey) that checks its checkpoints, e.g. for `lotline-verify --log-key` or
    `lotline witness init --log-key`; no token needed: it is a public key. Compare it with one obtained
    another way before trusting it."""
    keys = log.keys.all() if every else [k for k in [log.keys.active()] if k is not None]
    if not keys:
        raise NotFound("log key", log.origin)
    return PlainTextResponse("".join(k.vkey + "\n" for k in keys))


@router.get("/proofs/inclusion", response_model=InclusionOut, responses=errors(404, 409))
def inclusion(
    user: Verifier,
    log: LogDep,
    seq: Annotated[int, Query(ge=1, le=BIG, description="The event's chain position.")],
    size: AtSize = None,
) -> Any:
    """RFC 9162 inclusion proof of event `seq` in the signed checkpoint of `size` (inspector, QA, admin);
    409 with Retry-After if no checkpoint covers the event yet."""
    return log.inclusion_proof(seq, None if size is None else _signed_size(log, size)).as_dict()


@router.get("/proofs/consistency", response_model=ConsistencyOut, responses=errors(404))
def consistency(
    user: Verifier,
    log: LogDep,
    old: Annotated[int, Query(ge=0, le=BIG, description="A signed checkpoint's size, or 0.")],
    new: AtSize = None,
) -> Any:
    """RFC 9162 consistency proof from the checkpoint of `old` to the one of `new` (inspector, QA, admin)."""
    new_size = _signed_size(log, new)
    if old > new_size:
        raise InvalidInput(f"old size {old} is larger than new size {new_size}", field="old")
    if old > 0:
        log.get(old)
    return log.consistency_proof(old, new_size).as_dict()


@router.get("/proofs/{seq}", response_model=ProofBundleOut, responses=errors(404, 409))
def proof_bundle(seq: Seq, user: Verifier, log: LogDep, size: AtSize = None) -> Any:
    """Event `seq` in canonical form with its inclusion path and the cosigned checkpoint of `size`, to be
    checked alone (`lotline-verify --bundle FILE --log-key VKEY`) (inspector, QA, admin); 409 with
    Retry-After if no checkpoint covers the event yet."""
    return log.proof_bundle(seq, size)


@router.get("/witness/add-checkpoint", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {}}, "description": "`old N`, proof lines, a blank line, the note."},
    **errors(404),
})
def witness_request(
    user: WitnessOperator,
    log: LogDep,
    old: WitnessSize = 0,
) -> PlainTextResponse:
    """What a witness needs: the newest checkpoint and the consistency proof from its `old` size, in the
    C2SP tlog-witness add-checkpoint layout (inspector, QA)."""
    _latest(log)
    return PlainTextResponse(log.witness_request(old).body())


@router.post(
    "/witness/cosignatures", status_code=201, response_model=CosignatureOut, responses=errors(404, 409)
)
def add_cosignature(body: CosignatureIn, user: WitnessOperator, log: LogDep) -> Any:
    """Store a witness's cosignature of one of our checkpoints; refused (409) unless it verifies over the
    very checkpoint we signed (inspector, QA)."""
    return _cosignature(log.add_cosignature(body.note, body.witness_key))


def _latest(log: Transparency) -> CheckpointView:
    latest = log.latest()
    if latest is None:
        raise NoCheckpoint()
    return latest


def _signed_size(log: Transparency, size: int | None) -> int:
    """`size` if a checkpoint of that size was signed (404 otherwise); the newest checkpoint's if None."""
    if size is None:
        return _latest(log).size
    return log.get(size).size


def _checkpoint(view: CheckpointView) -> CheckpointOut:
    cp = view.checkpoint
    return CheckpointOut(
        size=cp.size,
        origin=cp.origin,
        root=base64.b64encode(cp.root).decode(),
        key_id=cp.key_id,
        created_at=cp.created_at,
        note=view.note(),
        cosignatures=[_cosignature(c) for c in view.cosignatures],
    )


def _cosignature(c: Cosignature) -> CosignatureOut:
    return CosignatureOut(
        size=c.size,
        witness=c.witness,
        key_id=c.key_id,
        public_key=base64.b64encode(c.public_key).decode(),
        timestamp=c.timestamp,
        line=c.line,
        received_at=c.received_at,
    )
