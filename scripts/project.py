"""`lotline project`: bring the read models up to date with the ledger, once or continuously.

Safe to re-run: each read model resumes from its own tracking position. `--rebuild` drops the read
models' tables and applies the whole log again; `--follow` keeps polling for new events (a separate
projection process, e.g. next to the API on PostgreSQL) until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from epcis import Epcis
from ledger.db import start_wal_checkpoints
from projections.base import ERROR_TEXT_MAX
from projections.epcis_index import FAILURE_NAME
from projections.runner import DEFAULT_BATCH, REBUILD_BATCH, ProjectionRunner
from scripts.db import existing_store

log = logging.getLogger("lotline.project")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "project", help="update the read models (genealogy, recall, inventory, custody, audit, EPCIS index)",
        description="Apply every event not yet applied to the read models, a batch per transaction, "
        "and print each read model's position. Exactly once: re-running, or running two at a time, "
        "never applies an event twice. A read model that fails on an event stops alone; the others "
        "go on, the failure is named and the exit status is 1 (a re-run tries that read model again).")
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--rebuild", action="store_true",
                   help="drop the read models' tables and re-apply the whole log first")
    p.add_argument("--follow", action="store_true", help="keep applying new events until interrupted")
    p.add_argument("--poll-interval", type=float, default=1.0,
                   help="seconds between polls with --follow (default 1)")
    p.add_argument("--with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"events per transaction (default {DEFAULT_BATCH}, {REBUILD_BATCH} to rebuild)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    url = existing_store(args.database_url)
    runner = ProjectionRunner.open(url)
    epcis = Epcis(runner.ledger, url)
    try:
        began = time.perf_counter()
        index_error: str | None = None
        if args.rebuild:
            read = runner.rebuild(batch_size=args.batch_size or REBUILD_BATCH, progress=_progress(runner))
            epcis.index.clear()
            print(f"rebuilt from {read:,} events in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        else:
            read = runner.catch_up(args.batch_size or DEFAULT_BATCH, progress=_progress(runner))
            print(f"applied {read:,} events in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        if not args.follow:  # following, the index's own thread catches it up beside the read models
            began = time.perf_counter()
            before = epcis.position()
            try:
                indexed = epcis.sync() - before
            except Exception as e:  # recorded where the store allows (epcis.failures()), reported below
                log.exception("the EPCIS index stopped at position %d", before)
                index_error = f"lotline project: the EPCIS index stopped at position {before}: {e!r}"
            else:
                took = time.perf_counter() - began
                print(f"indexed {indexed:,} chain positions for EPCIS in {took:.1f} s", file=sys.stderr)
        for name, position in runner.positions().items():
            print(f"{name}: {position}")
        print(f"epcis index: {epcis.position()}")
        failed = [*runner.failures(), *epcis.failures()]
        for failure in failed:
            print(f"lotline project: {failure.describe()}", file=sys.stderr)
        if index_error is not None and not any(f.name == FAILURE_NAME for f in failed):
            print(index_error[:ERROR_TEXT_MAX], file=sys.stderr)  # not recorded: the store refused that too
        if (failed or index_error is not None) and not args.follow:
            return 1
        if args.follow:
            # A supervisor stops a projection process with SIGTERM: finish the batch, then exit.
            signal.signal(signal.SIGTERM, lambda *_: runner.stop())
            if args.with_parent:
                _stop_when_orphaned(runner, args.with_parent)
            log.info("following the ledger every %.1f s; Ctrl-C to stop", args.poll_interval)
            following = epcis.start_following(args.poll_interval)
            checkpoints = start_wal_checkpoints(url)  # the ledger's commits then never copy the log back
            try:
                runner.run_forever(args.poll_interval, args.batch_size or DEFAULT_BATCH)
            except KeyboardInterrupt:
                log.info("stopped at position %d", runner.position())
            finally:
                following.close()
                if checkpoints is not None:
                    checkpoints.close()
    finally:
        epcis.close()
        runner.close()
    return 0


def _stop_when_orphaned(runner: ProjectionRunner, parent: int) -> None:
    """Stop following once process `parent` (the `lotline serve` that started this worker) is gone,
    however it ended: uvicorn re-raises the SIGTERM it caught, so serve's own clean-up never runs."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        log.info("lotline serve (pid %d) is gone; stopping", parent)
        while True:  # again and again: a stop before `run_forever` began would be forgotten by it
            runner.stop()
            time.sleep(1)

    threading.Thread(target=watch, name="lotline-parent-watch", daemon=True).start()


def _progress(runner: ProjectionRunner) -> Callable[[int], None]:
    """A progress callback that logs about every twentieth of the way to the ledger's head."""
    head = runner.head()
    step = max(head // 20, 1)
    last = [0]

    def report(position: int) -> None:
        if position - last[0] >= step or position == head:
            last[0] = position
            log.info("position %d of %d", position, head)

    return report
