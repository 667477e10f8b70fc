"""`lotline witness ...` (or `python -m scripts.witness`): a witness that cosigns only consistent checkpoints.

A witness runs on an inspector's or QA's own machine. It keeps, in its own state file, the last
checkpoint it accepted, and its own Ed25519 key in its own key file. Each `run` fetches the log's
newest checkpoint with a consistency proof from the size it last saw (the C2SP tlog-witness
`add-checkpoint` body), checks the log's signature and the proof, and then cosigns
(C2SP tlog-cosignature v1) -- or refuses loudly and exits 1. A log that rewrote or cut off history it
showed before cannot produce a valid proof, so it cannot get a cosignature.

Where the checkpoint comes from is a `Feed`: an audit export directory, the ledger database, or the
ledger's HTTP API (`--url`, with `httpx`). The witness itself needs only `cryptography` and
`lotline_verify`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lotline_verify.export import verify_export
from lotline_verify.notes import (
    COSIGNATURE_V1,
    Invalid,
    Key,
    b64decode,
    parse_head,
    parse_note,
    parse_vkey,
    verify_signed,
)
from lotline_verify.tree import EMPTY_ROOT, RangeHasher, consistency_ranges, leaf_hash, verify_consistency

STATE_FORMAT = "lotline-witness/1"


class Refused(Exception):
    """The witness will not cosign; the message says why."""


# --- where checkpoints come from --------------------------------------------------------------------


class Feed(Protocol):
    """Gives the witness the newest checkpoint with a proof, and takes its cosignature back."""

    def request(self, old_size: int) -> str:
        """`old <size>\\n`, base64 proof lines, a blank line, the signed checkpoint (tlog-witness body)."""
        ...

    def submit(self, cosigned_note: str, witness: Key) -> str:
        """Deliver the cosigned checkpoint; say where it went."""
        ...


class DatabaseFeed:
    """The ledger database itself (until the HTTP API exists): proofs from its stored tree."""

    def __init__(self, database_url: str) -> None:
        from ledger.config import Settings
        from ledger.schema import require_current
        from ledger.transparency import Transparency

        require_current(database_url)
        self._log = Transparency.open(Settings(database_url=database_url))

    def request(self, old_size: int) -> str:
        from ledger.errors import LedgerError

        try:
            return self._log.witness_request(old_size).body()
        except LedgerError as e:
            raise Refused(f"the log gave no checkpoint: {e.message}") from None

    def submit(self, cosigned_note: str, witness: Key) -> str:
        from ledger.errors import LedgerError
        from ledger.notes import VerifierKey

        key = VerifierKey(witness.name, witness.sig_type, witness.public_key)
        try:
            c = self._log.add_cosignature(cosigned_note, key)
        except LedgerError as e:
            raise Invalid(f"cosigned, but the ledger did not store the cosignature: {e.message}") from None
        return f"stored in the ledger with checkpoint {c.size}"

    def close(self) -> None:
        self._log.close()


class ExportFeed:
    """An audit export directory: the newest checkpoint in it, with a proof computed from its events.

    The export is verified in full first (lotline-verify), then the consistency proof from the
    witness's size is built by streaming the events; the cosigned checkpoint is written to `out`.
    """

    def __init__(self, directory: Path, out: Path | None = None) -> None:
        self.directory = Path(directory)
        self.out = out

    def request(self, old_size: int) -> str:
        verdict = verify_export(self.directory)
        if not verdict.ok:
            raise Refused(f"the export does not verify: {verdict.describe()}")
        manifest = json.loads((self.directory / "manifest.json").read_text())
        if manifest["first_seq"] != 1:
            raise Refused("a witness needs an export from event 1")
        note, size = self._newest(manifest["last_seq"])
        proof = self._proof(old_size, size) if 0 < old_size < size else []
        return f"old {old_size}\n" + "".join(p + "\n" for p in proof) + "\n" + note

    def _newest(self, last: int) -> tuple[str, int]:
        newest: tuple[str, int] | None = None
        with open(self.directory / "checkpoints.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row["size"] <= last:
                    newest = (row["note"], row["size"])
        if newest is None:
            raise Refused("the export holds no checkpoint")
        return newest

    def _proof(self, old: int, new: int) -> list[str]:
        ranges = consistency_ranges(old, new)
        hasher = RangeHasher(ranges)
        with open(self.directory / "events.jsonl", "rb") as f:
            for index, line in enumerate(f):
                if index >= new:
                    break
                hasher.feed(index, leaf_hash(line[line.index(b',"event":') + 9 : -2]))
        return [base64.b64encode(h).decode() for h in hasher.proof(ranges)]

    def submit(self, cosigned_note: str, witness: Key) -> str:
        if self.out is None:
            print(cosigned_note, end="")
            return "printed"
        self.out.write_text(cosigned_note, encoding="utf-8")
        return f"written to {self.out}"


class HttpFeed:
    """The ledger's HTTP API: `GET /inspector/witness/add-checkpoint?old=N` gives the newest checkpoint
    with its consistency proof, `POST /inspector/witness/cosignatures` stores the cosignature.

    `token` is an API token of a witness operator (inspector or QA). `client` (an `httpx.Client`, e.g. a
    test client on the ASGI app) replaces the network client.
    """

    def __init__(self, url: str, token: str, client: Any = None, timeout: float = 30.0) -> None:
        import httpx

        self._own = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._client.request(method, self._base + path, headers=self._headers, **kwargs)
        except httpx.HTTPError as e:
            raise Invalid(f"cannot reach the ledger at {self._base}: {e}") from None

    def request(self, old_size: int) -> str:
        answer = self._call("GET", "/inspector/witness/add-checkpoint", params={"old": old_size})
        if answer.status_code != 200:
            raise Refused(f"the log gave no checkpoint: HTTP {answer.status_code}: {_message(answer)}")
        return str(answer.text)

    def submit(self, cosigned_note: str, witness: Key) -> str:
        body = {"note": cosigned_note, "witness_key": witness.vkey()}
        answer = self._call("POST", "/inspector/witness/cosignatures", json=body)
        if answer.status_code != 201:
            raise Invalid(
                f"cosigned, but the ledger did not store the cosignature: HTTP {answer.status_code}: "
                f"{_message(answer)}"
            )
        return f"stored by {self._base} with checkpoint {answer.json()['size']}"

    def close(self) -> None:
        if self._own:
            self._client.close()


def _message(answer: Any) -> str:
    try:
        return str(answer.json().get("message", answer.text))
    except ValueError:
        return str(answer.text)


# --- the witness ---------------------------------------------------------------------------------------


@dataclass
class Accepted:
    size: int
    root: bytes
    cosigned_note: str
    line: str


class Witness:
    """The witness's state file and key: what it last cosigned, for which log, trusting which keys."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = Path(state_path)
        self.state: dict[str, Any] = json.loads(self.state_path.read_text())
        if self.state.get("format") != STATE_FORMAT:
            raise Invalid(f"{state_path} is not a {STATE_FORMAT} state file")
        self.name: str = self.state["name"]
        self.origin: str = self.state["origin"]
        self.log_keys = [parse_vkey(k) for k in self.state["log_keys"]]
        self._private = _read_private_key(Path(self.state["key_file"]), self.name)
        self.key = Key(self.name, COSIGNATURE_V1, _public(self._private))

    @classmethod
    def init(cls, state_path: Path, name: str, origin: str, log_keys: list[str],
             key_file: Path | None = None) -> Witness:
        """Create a witness: a new key (0600) and an empty state for the log `origin`."""
        state_path = Path(state_path)
        if state_path.exists():
            raise Invalid(f"{state_path} exists; a witness is initialised once")
        for k in log_keys:
            parse_vkey(k)
        key_file = Path(key_file or state_path.with_suffix(".key"))
        private = Ed25519PrivateKey.generate()
        key = Key(name, COSIGNATURE_V1, _public(private))
        seed = private.private_bytes_raw()
        blob = base64.b64encode(bytes([COSIGNATURE_V1]) + seed).decode()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"PRIVATE+KEY+{name}+{key.id.hex()}+{blob}\n")
        _save(state_path, {"format": STATE_FORMAT, "name": name, "origin": origin, "log_keys": log_keys,
                           "key_file": str(key_file.resolve()), "checkpoint": None, "accepted_at": None})
        return cls(state_path)

    @property
    def checkpoint(self) -> str | None:
        """The last checkpoint note this witness cosigned (with its cosignature), if any."""
        return self.state["checkpoint"]

    def size_and_root(self) -> tuple[int, bytes]:
        if self.checkpoint is None:
            return 0, EMPTY_ROOT
        head = parse_head(parse_note(self.checkpoint).text)
        return head.size, head.root

    def trust(self, vkey: str) -> None:
        """Also trust this log key (after the log rotated its key)."""
        parse_vkey(vkey)
        if vkey not in self.state["log_keys"]:
            self.state["log_keys"].append(vkey)
            _save(self.state_path, self.state)

    def add_checkpoint(self, body: str, now: int | None = None) -> Accepted:
        """Check a tlog-witness add-checkpoint body against the saved state; cosign and save, or Refused."""
        old, proof, note_text = _parse_request(body)
        try:
            note = parse_note(note_text)
            head = parse_head(note.text)
        except Invalid as e:
            raise Refused(f"the checkpoint is malformed: {e}") from None
        if head.origin != self.origin:
            raise Refused(f"the checkpoint is for log {head.origin!r}; this witness watches {self.origin!r}")
        try:
            verify_signed(note, self.log_keys)
        except Invalid as e:
            raise Refused(f"the checkpoint's log signature: {e}") from None
        self._require_consistent(old, proof, head.size, head.root)
        timestamp = now if now is not None else int(time.time())
        line = self._cosign(note.text, timestamp)
        cosigned = note_text + line
        self.state.update(checkpoint=cosigned, accepted_at=timestamp)
        _save(self.state_path, self.state)  # persisted before the cosignature leaves this program
        return Accepted(head.size, head.root, cosigned, line)

    def _require_consistent(self, old: int, proof: list[bytes], size: int, root: bytes) -> None:
        seen, seen_root = self.size_and_root()
        if old != seen:
            raise Refused(f"the proof starts at size {old} but this witness last cosigned size {seen}")
        if size < seen:
            raise Refused(f"the log now shows {size} events, fewer than the {seen} this witness cosigned: "
                          "its history was truncated or rolled back")
        if size == 0 and root != EMPTY_ROOT:
            raise Refused("a checkpoint of size 0 must carry the empty tree's root")
        if not verify_consistency(seen, size, seen_root, root, proof):
            raise Refused(f"the checkpoint of size {size} is NOT consistent with the checkpoint of size "
                          f"{seen} this witness cosigned before: the log's history was rewritten (a fork)")

    def _cosign(self, body: str, timestamp: int) -> str:
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()
        sig = timestamp.to_bytes(8, "big") + self._private.sign(message)
        return f"\u2014 {self.name} {base64.b64encode(self.key.id + sig).decode()}\n"


def _parse_request(body: str) -> tuple[int, list[bytes], str]:
    head, sep, note = body.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise Refused("the request is not `old <size>`, proof lines, a blank line and a checkpoint")
    size = lines[0][4:]
    if not size.isdigit() or (len(size) > 1 and size[0] == "0"):
        raise Refused(f"bad old size {size!r}")
    if len(lines) - 1 > 63:
        raise Refused("a consistency proof has at most 63 hashes")
    try:
        proof = [b64decode(x, "proof hash") for x in lines[1:]]
    except Invalid as e:
        raise Refused(str(e)) from None
    return int(size), proof, note


def _read_private_key(path: Path, name: str) -> Ed25519PrivateKey:
    parts = path.read_text().strip().split("+", 4)
    if len(parts) != 5 or parts[:3] != ["PRIVATE", "KEY", name]:
        raise Invalid(f"{path} is not the private key of witness {name}")
    raw = b64decode(parts[4], "witness key")
    if len(raw) != 33 or raw[0] != COSIGNATURE_V1:
        raise Invalid(f"{path} is not an Ed25519 cosigner key")
    private = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if Key(name, COSIGNATURE_V1, _public(private)).id.hex() != parts[3]:
        raise Invalid(f"{path}: the key ID does not match the key")
    return private


def _public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


# --- command line ----------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("witness", help="run a witness that cosigns consistent checkpoints",
                       description="A witness keeps the last checkpoint it accepted and cosigns a newer one "
                       "only with a valid consistency proof from it; otherwise it refuses (exit 1).")
    _add_actions(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lotline-witness", description=__doc__.split("\n\n")[0])
    _add_actions(p)
    return p


def _add_actions(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("init", help="create the witness key and state file")
    a.add_argument("--state", type=Path, required=True, help="the witness's state file (JSON)")
    a.add_argument("--name", required=True, help="the witness's key name, e.g. inspector.example/w1")
    a.add_argument("--origin", required=True, help="the log's origin line (LOTLINE_LOG_NAME)")
    a.add_argument("--log-key", action="append", required=True, metavar="VKEY",
                   help="the log's verifier key (from `lotline keys list`)")
    a.add_argument("--key-file", type=Path, help="where to write the private key (default STATE.key)")
    a = actions.add_parser("run", help="fetch the newest checkpoint, check it, cosign or refuse")
    a.add_argument("--state", type=Path, required=True)
    source = a.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, metavar="DIR", help="read from an audit export directory")
    source.add_argument("--database-url", help="read from the ledger database and store the cosignature")
    source.add_argument("--url", help="read from the ledger's HTTP API (e.g. https://lotline.example) and "
                        "post the cosignature back; needs --token")
    a.add_argument("--token", help="with --url: an API token of an inspector or QA user "
                   "(default: env LOTLINE_WITNESS_TOKEN)")
    a.add_argument("--out", type=Path, help="with --export: write the cosigned checkpoint here")
    a = actions.add_parser("show", help="print the witness key and the last checkpoint it cosigned")
    a.add_argument("--state", type=Path, required=True)
    a = actions.add_parser("trust", help="add a log key (after the log rotated its key)")
    a.add_argument("--state", type=Path, required=True)
    a.add_argument("--log-key", required=True, metavar="VKEY")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "init":
            w = Witness.init(args.state, args.name, args.origin, args.log_key, args.key_file)
            print(f"witness {w.name} created; its verifier key:\n{w.key.vkey()}")
            return 0
        w = Witness(args.state)
        if args.action == "show":
            print(f"witness {w.name} for {w.origin}\n{w.key.vkey()}")
            print(w.checkpoint or "(no checkpoint cosigned yet)", end="" if w.checkpoint else "\n")
            return 0
        if args.action == "trust":
            w.trust(args.log_key)
            print(f"now trusting {len(w.state['log_keys'])} log keys")
            return 0
        return _run(w, args)
    except Refused as e:
        print(f"lotline witness: REFUSED to cosign: {e}", file=sys.stderr)
        return 1
    except (Invalid, OSError, ValueError) as e:
        print(f"lotline witness: {e}", file=sys.stderr)
        return 2


def _feed(args: argparse.Namespace) -> Any:
    if args.url:
        from ledger.config import Settings

        token = args.token or Settings().witness_token
        if not token:
            raise Invalid("--url needs --token (or LOTLINE_WITNESS_TOKEN)")
        return HttpFeed(args.url, token)
    if args.database_url:
        return DatabaseFeed(args.database_url)
    return ExportFeed(args.export, args.out)


def _run(w: Witness, args: argparse.Namespace) -> int:
    feed = _feed(args)
    try:
        seen, _ = w.size_and_root()
        accepted = w.add_checkpoint(feed.request(seen))
        where = feed.submit(accepted.cosigned_note, w.key)
    finally:
        if isinstance(feed, DatabaseFeed | HttpFeed):
            feed.close()
    print(f"cosigned {w.origin} at size {accepted.size} ({where})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
