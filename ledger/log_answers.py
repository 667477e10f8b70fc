"""What the verifiable log answers and refuses: checkpoint views, proofs, witness requests, the audit
report, and the errors of the log (`ledger.transparency` builds them)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.checkpoints import Cosignature, StoredCheckpoint
from ledger.errors import LedgerError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CosignatureRefused(LedgerError):
    """A cosignature that does not verify, or is for a tree head the ledger never signed."""

    code = "cosignature_refused"


class NotYetCheckpointed(LedgerError):
    """The event is in the log but no signed checkpoint covers it yet; says when the policy signs the next
    one (`due_by`, None when the log has no signing key) and how to have one signed now."""

    code = "not_yet_checkpointed"

    def __init__(self, seq: int, signed: int, events: int, due_by: datetime | None, policy: str) -> None:
        now = datetime.now(UTC)
        covered = f"the newest covers events 1..{signed}" if signed else "no checkpoint has been signed yet"
        if due_by is None:
            when = "none will be signed until the log has a signing key (`lotline keys generate`)"
        else:
            when = (
                f"the next one is due by {due_by.isoformat(timespec='seconds')} ({policy}); ask again then, "
                "or sign one now (`lotline checkpoint make`; POST /inspector/checkpoints as QA or admin)"
            )
        super().__init__(
            f"event {seq} is in the log but not yet under a signed checkpoint ({covered}): {when}",
            seq=seq,
            checkpoint_size=signed,
            log_size=events,
            next_checkpoint_by=None if due_by is None else due_by.isoformat(timespec="seconds"),
        )
        self.retry_after = None if due_by is None else max(1, math.ceil((due_by - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class CheckpointView:
    """A stored checkpoint with the cosignatures it has received."""

    checkpoint: StoredCheckpoint
    cosignatures: tuple[Cosignature, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    def note(self) -> str:
        """The signed note with every cosignature line (C2SP tlog-cosignature layout)."""
        return self.checkpoint.cosigned(self.cosignatures)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Event `seq` is leaf `seq - 1` of the tree of `size` leaves with `root`."""

    seq: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "index": self.seq - 1,
            "size": self.size,
            "leaf_hash": _b64(self.leaf_hash),
            "path": [_b64(h) for h in self.path],
            "root": _b64(self.root),
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of `old` leaves (`old_root`) is a prefix of the tree of `new` leaves (`new_root`)."""

    old: int
    new: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "old_size": self.old,
            "new_size": self.new,
            "old_root": _b64(self.old_root),
            "new_root": _b64(self.new_root),
            "path": [_b64(h) for h in self.path],
        }


@dataclass(frozen=True, slots=True)
class WitnessRequest:
    """What a witness needs to move from its `old` size to the newest checkpoint (tlog-witness layout)."""

    old: int
    proof: tuple[bytes, ...]
    note: str

    def body(self) -> str:
        """`old <size>\\n`, one base64 proof hash per line, a blank line, the signed checkpoint."""
        lines = "".join(_b64(h) + "\n" for h in self.proof)
        return f"old {self.old}\n{lines}\n{self.note}"


@dataclass(frozen=True, slots=True)
class LogReport:
    """The outcome of auditing the live store: chain, tree, checkpoints, signatures, cosignatures."""

    ok: bool
    events: int
    checkpoints: int
    cosignatures: int
    problem: str | None = None
    notes: tuple[str, ...] = field(default=())
    chain: Any = None
    """The chain's own report (ledger.verify.Report) when the chain was walked to its end or failed."""

    def describe(self) -> str:
        if not self.ok:
            return f"FAILED: {self.problem}"
        extra = "".join(f"\n  note: {n}" for n in self.notes)
        return (
            f"OK: {self.events} events, {self.checkpoints} checkpoints and {self.cosignatures} "
            f"cosignatures verified{extra}"
        )
