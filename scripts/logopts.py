"""Options shared by the verifiable-log commands (keys, checkpoint, export): store, key directory, origin."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.config import Settings
from ledger.schema import require_current


def add_store_options(p: argparse.ArgumentParser, keys: bool = True) -> None:
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--log-name", help="override LOTLINE_LOG_NAME (the checkpoint origin and key name)")
    if keys:
        p.add_argument("--keys-dir", type=Path, help="override LOTLINE_KEYS_DIR (private key files)")


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with this command line's overrides."""
    overrides = {name: getattr(args, name, None) for name in ("database_url", "log_name", "keys_dir")}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def existing_store_settings(args: argparse.Namespace) -> Settings:
    """`settings_from(args)`, once its store exists at this release's schema; StoreNotReady (which says
    what to run) otherwise, as `scripts.db.existing_store`."""
    settings = settings_from(args)
    require_current(settings.database_url)
    return settings
