"""The console's screen for inspectors (and QA, admins): the chain's head, the signed checkpoints with
their cosignatures, the server's own verification on demand, and verification in the browser: the page
fetches an event's proof bundle (the event in canonical form, its inclusion path, the signed
checkpoint), or the newest checkpoint with a consistency proof from a checkpoint the inspector saved
earlier, and checks it with the browser's own WebCrypto (Ed25519 and SHA-256), against a verifier key
the inspector pastes in from a source they trust, not from this server. What is fetched stays
editable: a changed byte fails, naming what failed."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api import permissions
from api.console import PATH, PersonDep
from api.deps import Unblinding
from api.export import export_range, zip_answer
from ledger.errors import LedgerError

router = APIRouter(prefix=PATH, include_in_schema=False)


CHECKPOINTS_LISTED = 20


@router.get("/verify")
def verify_page(me: PersonDep, run: bool = False) -> HTMLResponse:
    """The head, the newest checkpoints with their cosignatures; with `run`, the server's verification
    of the whole chain (as `GET /inspector/verification`: every chain hash, leaf, root and signature)."""
    if refused := me.refused(permissions.VERIFY, "run verification"):
        return refused
    state = me.request.app.state
    size, head = state.ledger.chain.head()
    latest = state.transparency.latest()
    return me.page(
        "verify.html",
        size=size,
        head=head.hex(),
        note=latest.note() if latest else None,
        checkpoints=[
            {
                "size": v.size,
                "signed_at": v.checkpoint.created_at[:19].replace("T", " "),
                "root": base64.b64encode(v.checkpoint.root).decode(),
                "witnesses": [c.witness for c in v.cosignatures],
            }
            for v in state.transparency.list_checkpoints(before=-1, limit=CHECKPOINTS_LISTED)
        ],
        report=state.transparency.verify() if run else None,
        seq=min(size, latest.size) if latest else 1,
        may_export=me.user.role in permissions.EXPORT,
    )


@router.get("/verify/bundle")
def bundle(me: PersonDep, seq: int = 1) -> Response:
    """The proof bundle of event `seq` (as `GET /proofs/{seq}`), for the page to check."""
    if me.user.role not in permissions.VERIFY:
        return JSONResponse({"code": "forbidden", "message": "may not run verification"}, 403)
    try:
        found = me.request.app.state.transparency.proof_bundle(seq)
    except LedgerError as e:
        status = {"not_yet_checkpointed": 409, "invalid_input": 422}.get(e.code, 404)
        return JSONResponse({"code": e.code, "message": e.message}, status)
    return JSONResponse(found, headers={"Cache-Control": "no-store"})


@router.get("/verify/consistency")
def consistency(me: PersonDep, old: int = 0) -> Response:
    """The newest signed checkpoint and the RFC 9162 consistency proof from size `old` to it (as
    `GET /proofs/consistency`), for the page to check against a checkpoint the inspector kept."""
    if me.user.role not in permissions.VERIFY:
        return JSONResponse({"code": "forbidden", "message": "may not run verification"}, 403)
    log = me.request.app.state.transparency
    latest = log.latest()
    if latest is None:
        return JSONResponse({"code": "not_found", "message": "no checkpoint is signed yet"}, 404)
    if not 0 <= old <= latest.size:
        message = f"the saved checkpoint's size {old} is not between 0 and the newest size {latest.size}"
        return JSONResponse({"code": "invalid_input", "message": message}, 422)
    proof = log.consistency_proof(old, latest.size).as_dict()
    found = {"old_size": old, "new_size": latest.size, "checkpoint": latest.note(), "path": proof["path"]}
    return JSONResponse(found, headers={"Cache-Control": "no-store"})


@router.get("/verify/export")
def export(me: PersonDep) -> Response:
    """The audit export as a ZIP (as `GET /inspector/export`), for `lotline-verify` offline: it holds
    the kit list, so the unblinded read is recorded in the chain first (inspector)."""
    if refused := me.refused(permissions.EXPORT, "download the audit export"):
        return refused
    state = me.request.app.state
    try:
        Unblinding(me.user, state.ledger, me.request)(True, "audit export (every event, with the kit list)")
        last = export_range(state.transparency, None)
    except LedgerError as e:
        return me.forbidden(e.message)
    return zip_answer(state.transparency, last)
