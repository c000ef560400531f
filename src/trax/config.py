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
    budget_usd = 0.02                  # per transcript
    glossary = "~/terms.txt"           # one name or term a line

    [llm.prices.deepseek-flash]        # USD per 1M tokens: [off-peak, peak]
    input_cache_hit = [0.003, 0.006]
    input_cache_miss = [0.15, 0.30]
    output = [0.60, 1.20]
    peak_utc = [[1, 4], [6, 10]]       # hours [from, to) in UTC

The LLM's model name is configuration (``llm.model``) but it does change what
the enhancement stage produces, so that stage copies it into its own settings
(and so into its cache and dedup keys); no other module names a model.
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
        from trax.errors import hide_secret

        self._value = value
        # Every line Trax prints passes through ``scrub``: a server that quotes the
        # key back in an error message cannot make us print it.
        hide_secret(value)

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


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _budget(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _path(value: str) -> Path:
    return Path(value).expanduser()


PRICES_PER_MILLION: dict[str, dict[str, Any]] = {
    "deepseek-flash": {
        "input_cache_hit": [0.003, 0.006],
        "input_cache_miss": [0.15, 0.30],
        "output": [0.60, 1.20],
        "peak_utc": [[1, 4], [6, 10]],
    },
}
"""USD per million tokens, [off-peak, peak] (DeepSeek's list, late 2026); a model
missing here is priced at 0 (a local server)."""

_PRICE_KEYS = ("input_cache_hit", "input_cache_miss", "output")


def _prices(value: str | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A prices table: JSON from the environment, a TOML table from the file."""
    import json

    table = json.loads(value) if isinstance(value, str) else value
    if not isinstance(table, Mapping):
        raise ValueError("must be a table of models")
    checked: dict[str, dict[str, Any]] = {}
    for model, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{model}: must be a table")
        row: dict[str, Any] = {}
        for key in _PRICE_KEYS:
            pair = entry.get(key)
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(p, int | float) and p >= 0 for p in pair)
            ):
                raise ValueError(f"{model}.{key}: must be [off-peak, peak] USD per 1M tokens")
            row[key] = [float(p) for p in pair]
        spans = entry.get("peak_utc", [])
        if not isinstance(spans, list | tuple) or not all(
            isinstance(s, list | tuple) and len(s) == 2 and all(0 <= h <= 24 for h in s)
            for s in spans
        ):
            raise ValueError(f"{model}.peak_utc: must be a list of [from, to) UTC hours")
        row["peak_utc"] = [[int(a), int(b)] for a, b in spans]
        checked[str(model)] = row
    return checked


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
    Option(
        "llm.timeout_s",
        ("TRAX_LLM_TIMEOUT_S",),
        lambda: 60.0,
        _positive,
        help="read timeout: longest wait for the next bytes of an answer",
    ),
    Option(
        "llm.deadline_s",
        ("TRAX_LLM_DEADLINE_S",),
        lambda: 300.0,
        _positive,
        help="overall limit per chunk, retries included",
    ),
    Option(
        "llm.retries", ("TRAX_LLM_RETRIES",), lambda: 4, _count, help="retries of 429/5xx/timeouts"
    ),
    Option(
        "llm.budget_usd",
        ("TRAX_LLM_BUDGET_USD",),
        lambda: 0.01,
        _budget,
        help="most an enhancement may spend per transcript",
    ),
    Option(
        "llm.concurrency",
        ("TRAX_LLM_CONCURRENCY",),
        lambda: 4,
        _count,
        help="chunks sent at once",
    ),
    Option(
        "llm.glossary",
        ("TRAX_LLM_GLOSSARY",),
        lambda: None,
        _path,
        help="file of names and terms (one a line) for enhancement",
    ),
    Option(
        "llm.prices",
        ("TRAX_LLM_PRICES",),
        lambda: _prices(PRICES_PER_MILLION),
        _prices,
        help="USD per 1M tokens per model, [off-peak, peak] (JSON in the environment)",
    ),
)

TABLES = frozenset({"llm.prices"})
"""Options whose value in the file is a table, not a single value."""


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
    llm_deadline_s: float
    llm_retries: int
    llm_budget_usd: float
    llm_concurrency: int
    llm_glossary: Path | None
    llm_prices: dict[str, dict[str, Any]]
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
                values[option.key] = option.parse(raw if option.key in TABLES else str(raw))
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
            elif option.key in TABLES:
                import json

                text = json.dumps(value, separators=(",", ":"))
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
    if option.key in TABLES:
        if not isinstance(node, Mapping):
            raise ConfigError(f"{option.key} in {path} must be a table")
        return node, f"file {path}"
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


__all__ = ["OPTIONS", "PRICES_PER_MILLION", "Config", "ConfigError", "Secret", "load_config"]
