"""lotline-verify: check a Lotline audit export offline, trusting nothing but the maths and your own records.

Depends only on the standard library and `cryptography`: no database, no server, nothing from `ledger`.
It re-derives every event's chain hash and Merkle leaf from the exported canonical bytes, the Merkle
root at every checkpoint, checks every checkpoint signature against the log's public keys and every
witness cosignature, and -- given a checkpoint you saved earlier -- that this log extends it unchanged.
The formats are in docs/export-format.md and docs/merkle-and-checkpoints.md.
"""

from lotline_verify.bundle import verify_bundle
from lotline_verify.export import Verdict, verify_export
from lotline_verify.notes import Invalid, Key, parse_vkey

__all__ = ["Invalid", "Key", "Verdict", "parse_vkey", "verify_bundle", "verify_export"]
