"""The largest step the commands allow commits on both stores: a packaging run of 20,000 kits.

On PostgreSQL the library's pipelined insert hung forever on a commit of ~10,000 events (psycopg
pipeline mode: client in `Pipeline.sync`, server waiting for the client); the ledger's recorder now
writes without the pipeline. A watchdog turns a hang into a failure instead of a stuck suite.
"""

from __future__ import annotations

import threading

from ledger.application import Ledger
from ledger.domain import Kit, KitStatus
from ledger.verify import verify_chain
from tests.builders import Program

LARGEST_RUN = 20_000  # Package.kit_list's max_length
PATIENCE_S = 60


def test_a_packaging_run_of_the_largest_size_commits(ledger: Ledger) -> None:
    program = Program(ledger)
    program.reference().materials()
    program.formulate(yield_units=LARGEST_RUN, theoretical_units=LARGEST_RUN).placebo()
    program.transfer(program.dp, program.depot)
    before, _ = ledger.chain.head()

    done = threading.Event()
    failure: list[BaseException] = []

    def package() -> None:
        try:
            program.package(active_kits=LARGEST_RUN, placebo_kits=0, units_per_kit=1)
        except BaseException as error:  # handed to the test's thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=package, daemon=True).start()
    assert done.wait(PATIENCE_S), f"packaging {LARGEST_RUN} kits did not return in {PATIENCE_S} s"
    assert not failure, failure

    head, _ = ledger.chain.head()
    assert head - before == 2 + LARGEST_RUN  # the run, the lot it issued from, and each kit
    last = ledger.get(Kit, program.kit(f"K{LARGEST_RUN:05d}"))
    assert last.status == KitStatus.AVAILABLE
    assert verify_chain(ledger.chain).ok
