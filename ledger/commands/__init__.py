"""Every write to the ledger as a small frozen command, one module per bounded context.

Entry points (HTTP, console, EPCIS, CLI, demo, tests) build these; `Ledger.handle(command, actor)`
runs the one handler of each and returns `Recorded`.
"""

from ledger.commands.base import Command, Part, Recorded, RecordedEvent
from ledger.commands.distribution import AuthoriseDestruction, DecideQuarantine, ReceiveReturnedKits, Ship
from ledger.commands.materials import (
    CorrectLotQuantity,
    DeviationLine,
    Formulate,
    HoldLot,
    LotQuantity,
    OutputLot,
    RecallLot,
    ReceiveLot,
    RecordDeviation,
    RejectLot,
    ReleaseLot,
    YieldLimits,
)
from ledger.commands.packaging import (
    Arm,
    CertifyPackaging,
    DisposePackaging,
    ExtendExpiry,
    KitListEntry,
    Package,
    SponsorRelease,
)
from ledger.commands.recalls import (
    AcknowledgeRecall,
    CloseRecall,
    DestroyRecalledKits,
    JustifyUnaccounted,
    KitReportLine,
    OpenRecall,
    ReceiveRecallReturns,
    ReportRecallKits,
)
from ledger.commands.reference import (
    ActivateSite,
    CloseOutSite,
    DeactivateSite,
    RegisterLocation,
    RegisterSiteKey,
    RegisterTrial,
)
from ledger.commands.site import (
    ConfirmReceipt,
    DestroyKits,
    Dispense,
    ReportExcursion,
    ReturnKit,
    ReturnToDepot,
)

__all__ = [
    "AcknowledgeRecall",
    "ActivateSite",
    "Arm",
    "AuthoriseDestruction",
    "CertifyPackaging",
    "CloseOutSite",
    "CloseRecall",
    "Command",
    "ConfirmReceipt",
    "CorrectLotQuantity",
    "DeactivateSite",
    "DecideQuarantine",
    "DestroyKits",
    "DestroyRecalledKits",
    "DeviationLine",
    "Dispense",
    "DisposePackaging",
    "ExtendExpiry",
    "Formulate",
    "HoldLot",
    "JustifyUnaccounted",
    "KitListEntry",
    "KitReportLine",
    "LotQuantity",
    "OpenRecall",
    "OutputLot",
    "Package",
    "Part",
    "RecallLot",
    "ReceiveLot",
    "ReceiveRecallReturns",
    "ReceiveReturnedKits",
    "RecordDeviation",
    "Recorded",
    "RecordedEvent",
    "RegisterLocation",
    "RegisterSiteKey",
    "RegisterTrial",
    "RejectLot",
    "ReleaseLot",
    "ReportExcursion",
    "ReportRecallKits",
    "ReturnKit",
    "ReturnToDepot",
    "Ship",
    "SponsorRelease",
    "YieldLimits",
]
