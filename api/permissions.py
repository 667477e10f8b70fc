"""Who may read what: the API's side of the permission table in docs/api.md.

Commands are gated by the ledger (`ledger.domain.base.require_role`); these sets gate the queries.
Site users never see genealogy, recall impact, audit trails or the kit list (any of which could
unblind them); they see kit counts and custody only at their own sites.
"""

from __future__ import annotations

from ledger.application.access import UNBLINDED_READERS
from ledger.values import Role

EVERYONE = frozenset(Role)
TRACE = EVERYONE - {Role.SITE}
"""Blinded genealogy, recall impact, inventory of lots, custody and audit trails."""

UNBLINDED = frozenset(UNBLINDED_READERS)
"""May ask for `unblinded=true` answers (treatment and drug-product lot of each kit); each such read is
recorded first, as an event of the reader's account (the ledger's rule)."""

STOCK = EVERYONE
"""Kit counts and expiring kits (a site user: their own sites only)."""

VERIFY = frozenset({Role.INSPECTOR, Role.QA, Role.ADMIN})
"""Run verification, read the head hash and checkpoints."""

EXPORT = frozenset({Role.INSPECTOR})
"""Download the audit export (raw events: it includes the kit list, so it is unblinded)."""

WITNESS = frozenset({Role.INSPECTOR, Role.QA})
"""Run a witness: fetch what to cosign and hand cosignatures back (witness operators)."""

CHECKPOINT = frozenset({Role.QA, Role.ADMIN})
"""Have the log sign a checkpoint of its head now (e.g. right after a release)."""

CAPTURE = frozenset({Role.MANUFACTURING, Role.QA, Role.QP, Role.DEPOT, Role.SITE, Role.ADMIN})
"""Capture partners' EPCIS documents (each step is still checked against the ledger's role rules, and a
site user's against the places they are bound to: a site captures its own receipts, dispensing,
returns, excursions and destructions)."""

RECALL_STATUS = frozenset({Role.QA, Role.QP, Role.RECALL_INVESTIGATOR, Role.INSPECTOR, Role.ADMIN})
"""Read a recall campaign's status, its outstanding kits and its report (site users read only their own
site's task list; they stay blinded: kit numbers only)."""

ACCESS = frozenset({Role.ADMIN, Role.QA, Role.INSPECTOR})
"""Read users, their roles, places and token ids (never a secret)."""

ADMINISTER = frozenset({Role.ADMIN})
"""Change users' access (the ledger's own rule, checked before a password is hashed or a user looked up)."""
