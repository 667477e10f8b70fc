"""Settings from the environment (prefix LOTLINE_): the one place configuration is read."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOG_NAME = "lotline.local/log"
"""URL-shaped as C2SP recommends, under the special-use `.local` (RFC 6762) so it names no one's domain."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOTLINE_", extra="ignore")

    database_url: str = "sqlite:///lotline.db"
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `postgresql://user:pw@host:port/db`."""

    log_name: str = DEFAULT_LOG_NAME
    """`LOTLINE_LOG_NAME`: the log's origin and key name, a schema-less URL (c2sp.org/tlog-checkpoint),
    e.g. `supply.sponsor.example/trial-17`. Unset, a store keeps the name its checkpoints and keys carry
    (stores signed before the default changed: `lotline`); only a new store takes the default."""
