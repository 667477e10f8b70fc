"""Runs the read models: pulls the notification log in pages and applies each page in one transaction.

The same pull loop serves SQLite (which offers no subscription) and PostgreSQL. Each page of
events is decoded once and handed to every read model that has not applied it yet, all in one
transaction, each read model in a savepoint: its rows and its tracking position stay or go together
(see `projections.base`).
A read model that fails on a page is applied again event by event to find the event it fails on; it
stops there, the failure is recorded in its tracking row, and the others go on. A new runner (a
worker restart, `lotline project`) tries it again. Pages are read with
`select_notifications(start, limit, inclusive_of_start=False)` straight from the recorder: the
notification log's `select()` refuses pages larger than its section size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Engine, inspect

from ledger.application import Ledger
from ledger.errors import NotReady
from projections.audit import AuditTrail
from projections.base import (
    Failure,
    Positioned,
    Projection,
    ProjectionConflict,
    ProjectionError,
    ProjectionTimeout,
    advance,
    failures,
    first_hash,
    foreign,
    origin,
    positions,
    record_failure,
    reset,
    schemas,
    set_first_hash,
    tracking,
    tracking_metadata,
)
from projections.custody import Custody
from projections.db import open_engine, reading, store_of, writing
from projections.genealogy import Genealogy
from projections.inventory import Inventory
from projections.recall import RecallImpact

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Projection)

DEFAULT_BATCH = 1000
REBUILD_BATCH = 5000


READ_MODELS: tuple[type[Projection], ...] = (Genealogy, RecallImpact, Inventory, Custody, AuditTrail)
"""Every read model of Lotline."""


def read_models(engine: Engine, ledger: Ledger) -> list[Projection]:
    """Every read model of Lotline, on one engine; the audit trail reads chain links from `ledger`."""
    return [AuditTrail(engine, ledger.chain) if cls is AuditTrail else cls(engine) for cls in READ_MODELS]


class ReadModelsNotReady(ProjectionError, NotReady):
    """Read models with missing tables or tables built to another schema (`lotline db upgrade` fixes it)."""

    code = "read_models_not_ready"

    def __init__(self, url: str, built: dict[str, int | None], wanted: dict[str, int]) -> None:
        what = ", ".join(
            f"{name} (no tables)" if at is None else f"{name} (schema {at}, needs {wanted[name]})"
            for name, at in built.items()
        )
        super().__init__(
            f"the read models of the store at {url} are not ready: {what}; run "
            f"`lotline db upgrade --database-url {url}`",
            read_models=sorted(built),
        )


def prepare(
    conn: Connection, projections: Sequence[Projection | type[Projection]] = READ_MODELS,
    *, ledger: tuple[int, bytes | None],
) -> list[str]:
    """Create the read models' tables where missing; one whose tables were built to another schema is
    dropped and starts over from position 0, and all of them do when they were applied from another
    ledger than `ledger` (its head and the chain hash of its first event; see `foreign`). Run by
    `lotline db upgrade`, in its transaction; returns the names of the read models that start over."""
    tracking_metadata.create_all(conn)
    head, ledger_first = ledger
    restarted = []
    why = foreign(conn, head, ledger_first)
    if why is not None:
        log.warning("the read models are not this store's (%s); they start over from position 0", why)
        conn.execute(origin.delete())
        for p in projections:
            p.drop_tables(conn)
            reset(conn, p)
            restarted.append(p.name)
    elif first_hash(conn) is None and ledger_first is not None:
        set_first_hash(conn, ledger_first)  # read models applied before the origin was recorded
    built = schemas(conn)
    for p in projections:
        if p.name in built and built[p.name] != p.schema:
            log.warning("read model %s: schema %d, was %d; rebuilding", p.name, p.schema, built[p.name])
            p.drop_tables(conn)
        if built.get(p.name) != p.schema:
            reset(conn, p)
            if p.name not in restarted:
                restarted.append(p.name)
        p.create_tables(conn)
    return restarted


def not_ready(conn: Connection, projections: Sequence[Projection | type[Projection]] = READ_MODELS,
              ) -> dict[str, int | None]:
    """The read models whose tables are missing (None) or built to another schema (that schema)."""
    found = inspect(conn)
    ours = found.has_table(tracking.name) and found.has_table(origin.name)
    built = schemas(conn) if ours else {}
    return {p.name: built.get(p.name) for p in projections if built.get(p.name) != p.schema}


class ReadModelsOfAnotherLedger(ProjectionError, NotReady):
    """Read models applied from another ledger than the store's (on SQLite, a read models' file left
    beside another store); `lotline db upgrade` starts them over."""

    code = "read_models_of_another_ledger"

    def __init__(self, url: str, why: str) -> None:
        super().__init__(
            f"the read models of the store at {url} were not applied from its ledger: {why}; run "
            f"`lotline db upgrade --database-url {url}` to start them over",
            why=why,
        )


class ProjectionRunner:
    """Keeps the read models up to date with the ledger, exactly once per event."""

    def __init__(self, ledger: Ledger, engine: Engine, projections: Sequence[Projection] | None = None):
        self.ledger = ledger
        self.engine = engine
        self.projections = list(projections) if projections is not None else read_models(engine, ledger)
        self._by_type = {type(p): p for p in self.projections}
        self._stop = threading.Event()
        self.failed: dict[str, Failure] = {}
        """The read models this runner stopped applying, each on the event it failed on."""
        self._owned: tuple[Ledger, Engine] | None = None
        self._head_sql = (
            f"SELECT MAX(notification_id) FROM {ledger.chain.events_table_name}"
            if engine.dialect.name == "postgresql" else None  # SQLite: another file (`head`)
        )
        self.check()

    @classmethod
    def open(cls, database_url: str) -> ProjectionRunner:
        """A runner with its own ledger and engine on `database_url`; `close()` releases them."""
        ledger = Ledger.open(database_url)
        engine = open_engine(database_url)
        try:
            runner = cls(ledger, engine)
        except BaseException:
            ledger.close()
            engine.dispose()
            raise
        runner._owned = (ledger, engine)
        return runner

    def close(self) -> None:
        """Stop `run_forever` and release the ledger and engine this runner opened itself."""
        self._stop.set()
        if self._owned is not None:
            ledger, engine = self._owned
            ledger.close()
            engine.dispose()
            self._owned = None

    def get(self, cls: type[P]) -> P:
        """The read model of type `cls` this runner feeds."""
        found = self._by_type[cls]
        assert isinstance(found, cls)
        return found

    @property
    def genealogy(self) -> Genealogy:
        """Backward and forward traces."""
        return self.get(Genealogy)

    @property
    def recall(self) -> RecallImpact:
        """Recall notices and impact."""
        return self.get(RecallImpact)

    @property
    def inventory(self) -> Inventory:
        """Lot stock, kits per place, expiring kits."""
        return self.get(Inventory)

    @property
    def custody(self) -> Custody:
        """Hand-overs of kits and shipments."""
        return self.get(Custody)

    @property
    def audit(self) -> AuditTrail:
        """Every event of an entity, with its chain position."""
        return self.get(AuditTrail)

    # --- setup and positions ---------------------------------------------------------------------

    def check(self) -> None:
        """Refuse read models whose tables are missing or built to another schema (ReadModelsNotReady)."""
        why = None
        with reading(self.engine) as conn:
            behind = not_ready(conn, self.projections)
            if not behind:
                why = foreign(conn, *self._ledger_origin())
        if behind:
            wanted = {p.name: p.schema for p in self.projections}
            raise ReadModelsNotReady(store_of(self.engine), behind, wanted)
        if why is not None:
            raise ReadModelsOfAnotherLedger(store_of(self.engine), why)

    def setup(self) -> None:
        """What `lotline db upgrade` does for this runner's read models (see `prepare`)."""
        with writing(self.engine) as conn:  # the ledger read once no other runner can move them
            prepare(conn, self.projections, ledger=self._ledger_origin())

    def _ledger_origin(self) -> tuple[int, bytes | None]:
        """The ledger's head and the chain hash of its first event (None while it is empty)."""
        head = self.head()
        return head, self.ledger.chain.hash_at(1) if head else None

    def positions(self) -> dict[str, int]:
        """Each read model's position: the last notification id it applied."""
        with reading(self.engine) as conn:
            return positions(conn, [p.name for p in self.projections])

    def failures(self) -> list[Failure]:
        """The read models that stopped on an event (recorded by any runner, in any process)."""
        with reading(self.engine) as conn:
            return failures(conn)

    def position(self) -> int:
        """The position every read model has reached."""
        return min(self.positions().values())

    def head(self) -> int:
        """The last notification id in the ledger: wait for it to see your own write.

        On SQLite the read models have a file of their own (`projections.db.read_side_url`): the head
        is read from the store's file, through the event store's own connections (a read there waits
        for no writer: WAL). On PostgreSQL it is read through the read side's engine, not the event
        store's pool: there a read queues behind the writers, so every query would wait for the write
        path."""
        if self._head_sql is None:
            return int(self.ledger.recorder.max_notification_id() or 0)
        raw = self.engine.raw_connection()  # one statement: the driver's cursor, no transaction around it
        # In autocommit, so that the driver sends no BEGIN before it nor the pool a ROLLBACK after it:
        # one round trip instead of three.
        driver = raw.driver_connection
        assert driver is not None
        try:
            driver.autocommit = True
            cursor = raw.cursor()
            cursor.execute(self._head_sql)
            row = cursor.fetchone()
            cursor.close()
        except Exception:
            raw.invalidate()  # e.g. a connection the server dropped: not back into the pool
            raise
        finally:
            try:
                driver.autocommit = False  # never back in the pool in autocommit
            except Exception:
                raw.invalidate()  # a connection that cannot even be set so is dropped
            raw.close()  # back to the pool, which ends any transaction the driver began
        return int(row[0] or 0) if row else 0

    # --- applying ----------------------------------------------------------------------------------

    def catch_up(self, batch_size: int = DEFAULT_BATCH, *, max_batches: int | None = None,
                 progress: Callable[[int], None] | None = None, stoppable: bool = False) -> int:
        """Apply every new event, a page per transaction and read model; returns how many events were
        read. A read model that fails stops alone (see `failed`). With `stoppable`, `stop()` ends it after
        the page it is on (`run_forever`: a worker told to stop mid-rebuild does not finish the log)."""
        known = self.positions()
        read = batches = 0
        while (max_batches is None or batches < max_batches) and not (stoppable and self._stop.is_set()):
            going = [at for name, at in known.items() if name not in self.failed]
            if not going:
                break
            start = min(going)
            page = self.ledger.recorder.select_notifications(start, batch_size, inclusive_of_start=False)
            if not page:
                break
            events = [(n.id, self.ledger.mapper.to_domain_event(n)) for n in page]
            if start == 0:
                self._claim_origin()
            self._apply(events, known)
            read += len(page)
            batches += 1
            if progress is not None:
                progress(events[-1][0])
            if len(page) < batch_size:
                break
        return read

    def _claim_origin(self) -> None:
        """Before the ledger's first event is applied, record which ledger it is (`base.origin`)."""
        chain_hash = self.ledger.chain.hash_at(1)
        assert chain_hash is not None, "a page from position 0 starts with the chain's first event"
        with writing(self.engine) as conn:
            set_first_hash(conn, chain_hash)

    def _apply(self, events: Sequence[Positioned], known: dict[str, int]) -> None:
        """Apply a page to every read model that has not applied it, in one transaction, each read
        model in a savepoint of its own: its rows and its tracking position stay or go together.

        One transaction per page, not per read model: on SQLite every transaction takes the store's
        one write lock, and a ledger write waiting for it found it retaken five times a page. A read
        model that fails rolls back to its savepoint and is then looked at alone (`_isolate`); one
        that lost a race for its position (compare-and-set, checked first, before it writes: on
        PostgreSQL the tracking row stays locked until the transaction ends) takes up the new position
        on the next page. When the transaction itself fails, each read model is looked at alone.
        """
        last = events[-1][0]
        due = [p for p in self.projections if known[p.name] < last and p.name not in self.failed]
        applied, raced, broken = [], [], []
        try:
            with writing(self.engine) as conn:
                for p in due:
                    try:
                        with conn.begin_nested():
                            advance(conn, p.name, known[p.name], last)
                            p.apply(conn, [e for e in events if e[0] > known[p.name]])
                    except ProjectionConflict as e:
                        log.info("%s", e.message)
                        raced.append(p)
                    except Exception:
                        broken.append(p)
                    else:
                        applied.append(p)
        except Exception:
            log.exception("a page's transaction failed; applying each read model alone")
            applied, raced, broken = [], [], due
        for p in applied:
            known[p.name] = last
        if raced:
            now = self.positions()
            for p in raced:
                known[p.name] = now[p.name]
        for p in broken:
            known[p.name] = self._isolate(p, known[p.name], [e for e in events if e[0] > known[p.name]])

    def _apply_one(self, p: Projection, at: int, events: Sequence[Positioned]) -> None:
        with writing(self.engine) as conn:
            advance(conn, p.name, at, events[-1][0])
            p.apply(conn, events)

    def _isolate(self, p: Projection, at: int, events: Sequence[Positioned]) -> int:
        """Apply `events` one at a time to find the one `p` fails on; record it; the position reached."""
        for event in events:
            try:
                self._apply_one(p, at, [event])
            except ProjectionConflict:
                return self.positions()[p.name]
            except Exception as e:
                failure = Failure(p.name, event[0], f"{type(e).__name__}: {e}")
                log.exception("%s; the other read models go on", failure.describe())
                with writing(self.engine) as conn:
                    record_failure(conn, p.name, failure.position, failure.error)
                self.failed[p.name] = failure
                return at
            at = event[0]
        return at

    def rebuild(self, names: Sequence[str] | None = None, batch_size: int = REBUILD_BATCH,
                progress: Callable[[int], None] | None = None) -> int:
        """Drop the read models' tables (all, or those named), recreate them, re-apply from zero.

        The secondary indexes serve queries only, so they are built once at the end rather than
        kept up to date row by row (an eighth of the rebuild time); `setup()` (`lotline db upgrade`)
        builds any an interrupted rebuild left missing.
        """
        chosen = [p for p in self.projections if names is None or p.name in names]
        with writing(self.engine) as conn:
            for p in chosen:
                p.drop_tables(conn)
                p.create_tables(conn, indexes=False)
                reset(conn, p)
        read = self.catch_up(batch_size, progress=progress)
        with writing(self.engine) as conn:
            for p in chosen:
                p.create_tables(conn)
        return read

    def run_forever(self, poll_interval: float = 1.0, batch_size: int = DEFAULT_BATCH) -> None:
        """Catch up, then poll for new events every `poll_interval` seconds until `stop()`."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                read = self.catch_up(batch_size, stoppable=True)
            except ProjectionConflict as e:
                log.warning("%s; catching up from the new position", e.message)
                continue
            if read:
                log.info("applied %d events, now at %d", read, self.position())
            else:
                self._stop.wait(poll_interval)

    def stop(self) -> None:
        """Make `run_forever` return after its current batch."""
        self._stop.set()

    def wait_for(self, position: int, timeout: float = 5.0, poll: float = 0.02,
                 names: Sequence[str] | None = None) -> int:
        """Block until every read model (or those named) has applied `position`; the position reached,
        or `ProjectionTimeout` at the timeout or at once when one of them stopped before `position`."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.positions()
            reached = min(at[n] for n in (names or at))
            if reached >= position:
                return reached
            stuck = [f for f in self.failures() if f.position <= position and f.name in (names or at)]
            if stuck or time.monotonic() >= deadline:
                raise ProjectionTimeout(position, reached, timeout, stuck)
            time.sleep(poll)
