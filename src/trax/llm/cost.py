"""What enhancement costs: tokens from the API's ``usage``, priced from the config's table,
and a per-transcript budget that no chunk may be started past.

Prices are USD per million tokens, [off-peak, peak], for three kinds of
token: prompt tokens DeepSeek answered from its prefix cache (cache hit),
the other prompt tokens (cache miss), and output. Peak hours are UTC spans
in the table. A model the table does not list is priced at 0 (a local
server); the token counts are kept all the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trax.llm.client import Usage

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens at one moment (peak or off-peak already chosen)."""

    cache_hit: float = 0.0
    cache_miss: float = 0.0
    output: float = 0.0

    def cost(self, usage: Usage) -> float:
        # A server that reports no cache split bills every prompt token as a miss.
        hit = usage.cache_hit_tokens
        miss = usage.cache_miss_tokens or max(usage.prompt_tokens - hit, 0)
        return (
            hit * self.cache_hit + miss * self.cache_miss + usage.completion_tokens * self.output
        ) / MILLION


def is_peak(moment: datetime, spans: list[list[int]]) -> bool:
    hour = moment.astimezone(UTC).hour
    return any(start <= hour < end for start, end in spans)


def prices_at(table: Mapping[str, Mapping[str, Any]], model: str, moment: datetime) -> Prices:
    entry = table.get(model)
    if entry is None:
        return Prices()
    column = 1 if is_peak(moment, entry.get("peak_utc", [])) else 0
    return Prices(
        entry["input_cache_hit"][column],
        entry["input_cache_miss"][column],
        entry["output"][column],
    )


class BudgetExceeded(Exception):  # noqa: N818 - reads as what happened
    """A chunk was not started: it could have taken the transcript past its budget."""


class Ledger:
    """Spending of one transcript's enhancement, shared by the threads that send chunks.

    A chunk reserves its estimated worst cost before it is sent and settles
    the real cost when it returns, so chunks in flight together cannot pass
    the budget between them.
    """

    def __init__(
        self,
        budget_usd: float,
        table: Mapping[str, Mapping[str, Any]],
        model: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.budget_usd = budget_usd
        self.table = table
        self.model = model
        self.now = now
        self.usage = Usage()
        self.spent_usd = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()

    def prices(self) -> Prices:
        return prices_at(self.table, self.model, self.now())

    def estimate(self, prompt_tokens: int, output_tokens: int) -> float:
        """A chunk's cost if nothing were cached, at the current price."""
        return self.prices().cost(Usage(prompt_tokens, output_tokens, 0, prompt_tokens))

    def reserve(self, estimate_usd: float) -> None:
        with self._lock:
            if self.spent_usd + self._reserved + estimate_usd > self.budget_usd:
                raise BudgetExceeded(
                    f"budget of ${self.budget_usd:g} per transcript reached "
                    f"(spent ${self.spent_usd:.4f}; TRAX_LLM_BUDGET_USD)"
                )
            self._reserved += estimate_usd

    def settle(self, estimate_usd: float, usage: Usage) -> float:
        """Replace a reservation by what the API says was used; the cost in USD."""
        cost = self.prices().cost(usage)
        with self._lock:
            self._reserved = max(0.0, self._reserved - estimate_usd)
            self.spent_usd += cost
            self.usage += usage
        return cost

    def summary(self) -> dict[str, float]:
        """What ``Transcript.usage`` stores."""
        u = self.usage
        return {
            "llm_requests": float(u.requests),
            "llm_prompt_tokens": float(u.prompt_tokens),
            "llm_cache_hit_tokens": float(u.cache_hit_tokens),
            "llm_cache_miss_tokens": float(u.cache_miss_tokens),
            "llm_output_tokens": float(u.completion_tokens),
            "llm_cost_usd": round(self.spent_usd, 6),
        }
