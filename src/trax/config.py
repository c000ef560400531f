"""Runtime configuration: one ``Config``, from the environment and an optional TOML file.

What lives here changes how Trax runs, never what it produces: paths, the
database URL, cache expiry, the LLM endpoint and its key, timeouts. None of it
is hashed into a cache or dedup key, stored with a transcript or printed
unmasked. Settings that change a transcript belong to the stages instead.

The file is ``config.toml`` in the user config folder (``TRAX_CONFIG`` names
another); the environment overrides it::

    database_url = "postgresql://me@db/trax"
    cache_ttl_days = 14

    [llm]
    base_url = "https://api.deepseek.com"
    api_key = "sk-…"
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trax.errors import TraxError


class ConfigError(TraxError):
    """A config file or variable that cannot be used."""


class Secret:
    """A value that must never be shown: its repr and str are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that sends it (an HTTP header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its key in the file, the variables that set it, and its default."""

    key: str
    env: tuple[str, ...]
    default: Callable[[], Any]
    parse: Callable[[str], Any] = str
    secret: bool = False
    help: str = ""


def _default_data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path("trax", appauthor=False)


def _default_cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("trax", appauthor=False)


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


OPTIONS: tuple[Option, ...] = (
    Option(
        "database_url",
        ("TRAX_DATABASE_URL",),
        lambda: None,
        help="database (default: SQLite trax.db in data_dir)",
    ),
    Option("data_dir", ("TRAX_DATA_DIR",), _default_data_dir, Path, help="embedded database"),
    Option(
        "cache_dir", ("TRAX_CACHE_DIR",), _default_cache_dir, Path, help="joined models, stamps"
    ),
    Option(
        "cache_ttl_days",
        ("TRAX_CACHE_TTL_DAYS",),
        lambda: 30.0,
        _positive,
        help="stage cache expiry",
    ),
    Option(
        "llm.base_url",
        ("TRAX_LLM_BASE_URL",),
        lambda: "https://api.deepseek.com",
        help="OpenAI-compatible endpoint",
    ),
    Option(
        "llm.api_key",
        ("TRAX_LLM_API_KEY", "DEEPSEEK_API_KEY"),
        lambda: None,
        Secret,
        secret=True,
        help="LLM API key",
    ),
    Option("llm.model", ("TRAX_LLM_MODEL",), lambda: "deepseek-flash", help="LLM model name"),
    Option("llm.timeout_s", ("TRAX_LLM_TIMEOUT_S",), lambda: 60.0, _positive, help="per request"),
)


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration and where each value came from."""

    database_url: str | None = field(repr=False)  # may hold a password: see ``shown``
    data_dir: Path
    cache_dir: Path
    cache_ttl_days: float
    llm_base_url: str
    llm_api_key: Secret | None
    llm_model: str
    llm_timeout_s: float
    file: Path
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the file (if any), then the environment over it; check every value."""
        environ = os.environ if environ is None else environ
        path = config_file(environ)
        document = _read_toml(path)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            raw, source = _lookup(option, environ, document, path)
            if raw is None:
                values[option.key] = option.default()
                sources[option.key] = "default"
                continue
            try:
                values[option.key] = option.parse(str(raw))
            except ValueError as exc:
                raise ConfigError(f"{option.key} from {source}: {exc}") from exc
            sources[option.key] = source
        return cls(
            **{key.replace(".", "_"): value for key, value in values.items()},
            file=path,
            sources=sources,
        )

    @property
    def database(self) -> str:
        """The database URL to use: the configured one, else SQLite in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'trax.db'}"

    def shown(self) -> list[tuple[str, str, str]]:
        """(key, value, source) rows for ``trax config``: secrets and passwords masked."""
        from trax.store.database import redact

        rows = []
        for option in OPTIONS:
            value = getattr(self, option.key.replace(".", "_"))
            if option.secret:
                text = "(not set)" if value is None else "(set, hidden)"
            elif option.key == "database_url":
                text = redact(self.database)
            else:
                text = str(value)
            rows.append((option.key, text, self.sources.get(option.key, "default")))
        return rows


def config_file(environ: Mapping[str, str]) -> Path:
    if named := environ.get("TRAX_CONFIG"):
        return Path(named).expanduser()
    from platformdirs import user_config_path

    return user_config_path("trax", appauthor=False) / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def _lookup(
    option: Option, environ: Mapping[str, str], document: Mapping[str, Any], path: Path
) -> tuple[Any, str]:
    for name in option.env:
        if environ.get(name):
            return environ[name], f"env {name}"
    node: Any = document
    for part in option.key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return None, "default"
    if isinstance(node, Mapping | list):
        raise ConfigError(f"{option.key} in {path} must be a single value")
    return node, f"file {path}"


_cached: tuple[tuple[Any, ...], Config] | None = None
_cached_lock = threading.Lock()


def load_config() -> Config:
    """The process's ``Config``, read once and again only when its inputs change.

    Its inputs are the variables it reads and the file's modification stamp, so
    a long-lived process (or a test that changes the environment) never works
    from a stale value, while repeated calls cost a few dictionary lookups.
    """
    global _cached
    path = config_file(os.environ)
    try:
        status = path.stat()
        stamp: Any = (status.st_mtime_ns, status.st_size, status.st_ino)
    except OSError:
        stamp = None
    names = ["TRAX_CONFIG", *(name for option in OPTIONS for name in option.env)]
    inputs = (stamp, *(os.environ.get(name) for name in names))
    with _cached_lock:
        if _cached is None or _cached[0] != inputs:
            _cached = (inputs, Config.load())
        return _cached[1]


__all__ = ["OPTIONS", "Config", "ConfigError", "Secret", "load_config"]
