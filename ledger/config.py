"""Settings from the environment (prefix LOTLINE_): the one place configuration is read.

Every field below is one environment variable, `LOTLINE_` + the field name in capitals, described by
its docstring. The README's Configuration table is `markdown_table()` (a test keeps them equal).
Command-line options override the environment: `Settings(database_url=args.database_url)`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOG_NAME = "lotline.local/log"
"""URL-shaped as C2SP recommends, under the special-use `.local` (RFC 6762) so it names no one's domain."""


class Settings(BaseSettings):
    """Everything Lotline reads from the environment: the store, the log, the API and its limits."""

    model_config = SettingsConfigDict(
        env_prefix="LOTLINE_", extra="ignore", use_attribute_docstrings=True
    )

    # --- the store and the verifiable log --------------------------------------------------------

    database_url: str = "sqlite:///lotline.db"
    """The store: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or
    `postgresql://user:password@host:5432/db`. Made by `lotline db upgrade` (or `demo`, `serve`)."""

    log_name: str = DEFAULT_LOG_NAME
    """`LOTLINE_LOG_NAME`: the log's origin and key name, a schema-less URL (c2sp.org/tlog-checkpoint),
    e.g. `supply.sponsor.example/trial-17`. Unset, a store keeps the name its checkpoints and keys carry
    (stores signed before the default changed: `lotline`); only a new store takes the default."""
    keys_dir: Path = Path("keys")
    """Directory of the log's private signing-key files (created 0700; key files 0600)."""

    checkpoint_every_events: int = 1000
    """Sign a checkpoint once this many events are not yet covered by one."""

    checkpoint_every_seconds: float = 300.0
    """...or once the newest checkpoint is this many seconds old and events have arrived since."""

    checkpoint_poll_seconds: float = 5.0
    """How often `lotline checkpoint watch` and the API's checkpointer look for new events."""

    max_shelf_life_days: int = Field(3653, ge=1, le=36525)
    """The longest a lot may be good for: a lot whose expiry is more than this many days after its
    manufacture is refused at receipt (and a formulation's output likewise)."""

    late_entry_hours: float = Field(24.0, ge=0, le=24 * 3653)
    """A step that happened more than this many hours before it is recorded is a late entry (ALCOA+:
    contemporaneous): it needs a reason (`late_reason`) and is flagged in its event, the audit trail
    and the reports. 0 makes every back-dated step a late entry."""

    console_idle_minutes: float = Field(15.0, gt=0, le=24 * 60)
    """A console session unused this long ends (21 CFR 11.300-style session control): the person
    signs in again."""

    # --- the HTTP API (`lotline serve`) ----------------------------------------------------------

    host: str = "127.0.0.1"
    """The address `lotline serve` binds (its `--host` overrides it)."""

    port: int = 8000
    """The port `lotline serve` binds (its `--port` overrides it)."""

    max_body_bytes: int = 1024 * 1024
    """The API refuses larger request bodies with 413 before reading them."""

    epcis_capture_limit: int = 5000
    """The most events one EPCIS capture takes (`GS1-EPCIS-Capture-Limit`); a larger document is 413,
    to be sent as several, in order."""

    projection_poll_seconds: float = 0.5
    """How often a projection worker (`lotline project --follow`, the one `lotline serve` starts)
    looks for new events to apply to the read models."""

    read_wait_seconds: float = 5.0
    """A read with `?after=N`, and opening a recall, wait at most this long for the read models to
    reach the position; then 503 with Retry-After."""

    projection_worker: bool = True
    """`lotline serve` starts a projection worker process (`lotline project --follow`) next to the API,
    and stops it on exit; `false` (or `serve --no-projection-worker`) where one runs elsewhere. On
    SQLite the worker also copies the store's write-ahead log back into it (the API's commits leave
    that to it up to 40 MiB of log)."""

    projection_thread: bool = False
    """The API process applies events in a thread of its own (tests, one-process embedding); `lotline
    serve` starts a worker process instead."""

    checkpoint_in_background: bool = True
    """Each API process signs checkpoints by the policy above in a background thread."""

    signature_token_max_age_seconds: int = 900
    """A token offered to re-authenticate a signature must be this fresh (and not the bearer token)."""

    # --- the witness (`lotline witness run --url`) -----------------------------------------------

    witness_token: str | None = None
    """The API token `lotline witness run --url` sends when `--token` is not given."""


def markdown_table() -> str:
    """The README's table of every setting: variable, default, meaning (from the field docstrings)."""
    rows = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif default is None:
            shown = "(none)"
        elif isinstance(default, float) and default.is_integer():
            shown = f"`{int(default)}`"
        else:
            shown = f"`{default}`"
        about = " ".join((field.description or "").split())
        rows.append(f"| `LOTLINE_{name.upper()}` | {shown} | {about} |")
    return "\n".join(rows) + "\n"
