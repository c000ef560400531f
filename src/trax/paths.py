"""Where Trax keeps its files; each overridable by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The embedded database lives here (``TRAX_DATA_DIR``)."""
    if env := os.environ.get("TRAX_DATA_DIR"):
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("trax", appauthor=False)


def cache_dir() -> Path:
    """Joined model files and verification stamps (``TRAX_CACHE_DIR``)."""
    if env := os.environ.get("TRAX_CACHE_DIR"):
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("trax", appauthor=False)
