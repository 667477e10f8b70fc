"""The ledger's application service by bounded context, over one store and one hash chain.

`core` holds `Ledger` (loading, saving, `handle`); each context module registers the handlers of its
commands (`ledger.commands`): reference data, materials, packaging and release, distribution, site
operations, recalls.
"""

from ledger.application import access, distribution, materials, packaging, recalls, reference, sites
from ledger.application.core import KitStateReader, Ledger
from ledger.commands import Recorded

__all__ = [
    "KitStateReader",
    "Ledger",
    "Recorded",
    "access",
    "distribution",
    "materials",
    "packaging",
    "recalls",
    "reference",
    "sites",
]
