"""Settings from the environment (prefix LOTLINE_): the one place configuration is read."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOTLINE_", extra="ignore")

    database_url: str = "sqlite:///lotline.db"
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `postgresql://user:pw@host:port/db`."""

    log_name: str = "lotline"
    """The origin name of the log (used in checkpoints and exports)."""
