"""The API's settings (prefix LOTLINE_): the store, the verifiable log, and the API's own limits."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from ledger.config import Settings
from ledger.transparency import TransparencySettings


class ApiSettings(TransparencySettings):
    """Everything `create_app` reads: `database_url`, `log_name`, `keys_dir`, and the limits below."""

    model_config = SettingsConfigDict(env_prefix="LOTLINE_", extra="ignore")

    max_body_bytes: int = 1024 * 1024
    """Larger request bodies are refused with 413 before they are read."""

    projection_poll_seconds: float = 0.5
    """How often the background loop applies new events to the read models."""

    catch_up_batches: int = 5
    """A query first applies up to this many pages (1,000 events each) of new events."""

    checkpoint_in_background: bool = True
    """Sign checkpoints by the policy (every N events / T seconds) in a background thread of each process."""

    signature_token_max_age_seconds: int = 900
    """A token offered to re-authenticate a signature must be this fresh (and not the bearer token)."""

    @classmethod
    def of(cls, settings: Settings | None) -> ApiSettings:
        """API settings from the environment, with the fields `settings` sets taking precedence."""
        if settings is None or isinstance(settings, ApiSettings):
            return settings or cls()
        return cls(**settings.model_dump(exclude_unset=True))
