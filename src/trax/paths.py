"""Where Trax keeps its files (see ``trax.config``: ``TRAX_DATA_DIR``, ``TRAX_CACHE_DIR``)."""

from __future__ import annotations

from pathlib import Path

from trax.config import load_config


def data_dir() -> Path:
    """The embedded database lives here."""
    return load_config().data_dir


def cache_dir() -> Path:
    """Joined model files and verification stamps."""
    return load_config().cache_dir
