"""``EnhanceStage``: the transcript stage of pipeline v2 that asks an LLM for edits.

The transcript goes out in chunks of about ``chunk_tokens`` (whole segments,
with a few neighbours as read-only context), up to ``concurrency`` at once.
Each chunk's answer is kept in the stage cache under a key of everything that
could change it (prompt version, model, stage settings, the chunk and its
context), so running it again costs nothing. The answers are proposals:
``trax.llm.edits`` decides which apply.

The stage never loses a transcript. A chunk that gets no usable answer (the
server failing past its retries, no balance, the budget reached) keeps its
v1 text, and the transcript records one line under ``skipped`` saying so; a
run that could not enhance anything is still the v1 transcript.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from trax.core import Segment, SkippedStage, Transcript, digest
from trax.llm.client import NO_KEY, ClientSettings, LLMError, Usage
from trax.llm.edits import Guardrails, apply
from trax.llm.prompt import PROMPT_VERSION, Chunk, estimate_tokens, messages, segment_line

if TYPE_CHECKING:
    from trax.config import Config
    from trax.core import Edit
    from trax.llm.client import ChatClient
    from trax.llm.cost import Ledger
    from trax.pipeline.stages import RunContext
    from trax.store.cache import StageCache

log = logging.getLogger(__name__)

NAMESPACE = "enhance"
"""The stage cache namespace of the LLM's answers (``trax cache stats``)."""


@dataclass(frozen=True, slots=True)
class EnhanceSettings:
    """Everything that changes what the stage produces: hashed into its key, recorded."""

    model: str
    prompt: str = PROMPT_VERSION
    glossary: tuple[str, ...] = ()
    chunk_tokens: int = 2000
    context_segments: int = 2
    context_words: int = 24
    """Read-only context shown each side of a chunk: at most this many words."""
    low_probability: float = 0.6
    max_words: int = 3
    min_similarity: float = 0.5
    max_drift: float = 0.1

    def guardrails(self) -> Guardrails:
        return Guardrails(
            low_probability=self.low_probability,
            max_words=self.max_words,
            min_similarity=self.min_similarity,
            max_drift=self.max_drift,
            glossary=self.glossary,
        )

    @classmethod
    def from_config(
        cls, config: Config, hotwords: str | None = None, glossary: tuple[str, ...] = ()
    ) -> EnhanceSettings:
        """The configured model, and the glossary from the config's file, ``glossary``
        (``--glossary FILE``) and ``--hotwords``."""
        from trax.llm.glossary import hotword_terms, merge, read_glossary

        configured = read_glossary(config.llm_glossary) if config.llm_glossary else []
        return cls(
            model=config.llm_model, glossary=merge(configured, glossary, hotword_terms(hotwords))
        )


@dataclass(frozen=True, slots=True)
class EnhanceRuntime:
    """How the stage reaches the model and what it may spend: never part of its key."""

    client: ClientSettings
    budget_usd: float = 0.01
    concurrency: int = 4
    prices: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_config(cls, config: Config) -> EnhanceRuntime:
        return cls(
            ClientSettings.from_config(config),
            config.llm_budget_usd,
            config.llm_concurrency,
            config.llm_prices,
        )


def plan_chunks(segments: tuple[Segment, ...], settings: EnhanceSettings) -> list[Chunk]:
    """Consecutive segments with words, about ``chunk_tokens`` each, never splitting one."""
    runs: list[list[int]] = []
    size = 0
    for index, segment in enumerate(segments):
        if not segment.words:
            continue
        tokens = estimate_tokens(segment_line(index, segment, settings.low_probability))
        if not runs or size + tokens > settings.chunk_tokens:
            runs.append([])
            size = 0
        runs[-1].append(index)
        size += tokens
    context, last_index = settings.context_segments, len(segments) - 1
    return [
        Chunk(run[0], run[-1], max(0, run[0] - context), min(last_index, run[-1] + context))
        for run in runs
    ]


class EnhanceStage:
    """Guarded LLM edits of misheard words, terms, punctuation and casing."""

    name: Final = "enhance"
    version: Final = "llm-enhance/2"
    kind: Final = "transcript"
    adds = "LLM fixes of misheard words, terms, punctuation and casing, checked in code"
    cached = False  # answers are cached per chunk instead: a failed chunk must be retried
    optional = True

    def __init__(
        self,
        settings: EnhanceSettings,
        runtime: EnhanceRuntime | None = None,
        cache: StageCache | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self.cache = cache
        self._now = now
        self._sleep = sleep

    @property
    def settings(self) -> EnhanceSettings:
        return self._settings

    @property
    def runtime(self) -> EnhanceRuntime:
        if self._runtime is None:
            from trax.config import load_config

            self._runtime = EnhanceRuntime.from_config(load_config())
        return self._runtime

    def unavailable(self) -> str | None:
        return NO_KEY if self.runtime.client.api_key is None else None

    def chunk_key(self, request: list[dict[str, str]]) -> str:
        return digest([self.name, self.version, asdict(self.settings), request])

    def process(self, transcript: Transcript, run: RunContext) -> Transcript:
        from trax.llm.cost import Ledger

        segments = transcript.segments
        chunks = plan_chunks(segments, self.settings)
        runtime = self.runtime
        ledger = Ledger(runtime.budget_usd, runtime.prices or {}, self.settings.model, self._now)
        if not chunks:
            reason = "nothing to enhance (no words with timestamps)"
            return replace(
                transcript, skipped=(*transcript.skipped, SkippedStage(self.name, reason))
            )
        cache = self.cache if self.cache is not None else run.cache
        requests = [
            messages(
                segments,
                chunk,
                self.settings.glossary,
                transcript.language or None,
                self.settings.low_probability,
                self.settings.context_words,
            )
            for chunk in chunks
        ]
        keys = [self.chunk_key(r) for r in requests]
        answers: dict[int, Any] = {}
        for i, key in enumerate(keys):
            hit = _cached_answer(cache, key)
            if hit is not None:
                answers[i] = hit
        from_cache = set(answers)
        failures = self._ask_all(requests, answers, ledger, run, transcript.duration_s)
        new_segments = list(segments)
        edits: list[Edit] = []
        for i, chunk in enumerate(chunks):
            if i not in answers:
                continue
            result = apply(segments, chunk, answers[i], self.settings.guardrails())
            if result.problem is not None:
                failures[i] = f"LLM answer unusable: {result.problem}"
                continue
            if cache is not None and i not in from_cache:
                _store_answer(cache, keys[i], answers[i])
            for index, segment in result.segments.items():
                new_segments[index] = segment
            edits.extend(result.edits)
        usage = ledger.summary() | {
            "llm_chunks": float(len(chunks)),
            "llm_cached_chunks": float(len(from_cache)),
            "llm_budget_usd": runtime.budget_usd,
        }
        skipped = transcript.skipped
        if failures:
            reason = _failure_line(failures, len(chunks))
            log.warning("%s: %s", transcript.media.path, reason)
            skipped = (*skipped, SkippedStage(self.name, reason))
        return replace(
            transcript,
            segments=tuple(new_segments),
            edits=(*transcript.edits, *edits),
            usage=transcript.usage | usage,
            skipped=skipped,
        )

    def _ask_all(
        self,
        requests: list[list[dict[str, str]]],
        answers: dict[int, Any],
        ledger: Ledger,
        run: RunContext,
        position_s: float,
    ) -> dict[int, str]:
        """Send the chunks not answered yet, ``concurrency`` at once; fill ``answers`` and
        return why the others have none."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from trax.llm.client import ChatClient

        pending = [i for i in range(len(requests)) if i not in answers]
        if not pending:
            return {}
        failures: dict[int, str] = {}
        stop = threading.Event()
        halted: list[str] = []
        try:
            client = ChatClient(self.runtime.client, sleep=self._sleep)
        except LLMError as exc:
            return dict.fromkeys(pending, str(exc))
        workers = max(1, min(self.runtime.concurrency, len(pending)))
        with client, ThreadPoolExecutor(workers, thread_name_prefix="trax-llm") as pool:
            futures = {
                pool.submit(self._ask, client, requests[i], ledger, stop, halted): i
                for i in pending
            }
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    outcome = future.result()
                    if isinstance(outcome, str):
                        failures[i] = outcome
                    else:
                        answers[i] = outcome
                    run.report(position_s)  # lets a cancelled job stop here
            except BaseException:
                stop.set()  # nothing new is sent; what is in flight finishes
                raise
        return failures

    def _ask(
        self,
        client: ChatClient,
        request: list[dict[str, str]],
        ledger: Ledger,
        stop: threading.Event,
        halted: list[str],
    ) -> dict[str, Any] | str:
        """One chunk's answer, or one line on why there is none (never raises: a chunk
        that fails must not take the transcript with it)."""
        from trax.llm.cost import BudgetExceeded

        if stop.is_set():
            return f"not sent after: {halted[0]}" if halted else "not sent"
        prompt = sum(estimate_tokens(m["content"]) for m in request)
        # An edit is about a dozen tokens ([12,3,"flower","flour"]): a quarter of the
        # chunk's tokens is room for an edit every few words.
        transcript_part = estimate_tokens(request[-1]["content"])
        estimate = ledger.estimate(prompt, transcript_part // 4 + 50)
        try:
            ledger.reserve(estimate)
        except BudgetExceeded as exc:
            return str(exc)
        try:
            answer = client.chat_json(request)
        except LLMError as exc:
            ledger.settle(estimate, exc.usage)
            if exc.fatal:
                halted.append(str(exc))
                stop.set()
            return str(exc)
        except Exception as exc:  # anything else still keeps the v1 text
            ledger.settle(estimate, Usage())
            log.debug("enhancement chunk failed", exc_info=True)
            return f"enhancement failed: {type(exc).__name__}"
        ledger.settle(estimate, answer.usage)
        return answer.data


def _cached_answer(cache: StageCache | None, key: str) -> Any | None:
    """A chunk's kept answer; a cache that fails is only a miss (it saves money, no more)."""
    if cache is None:
        return None
    try:
        value = cache.get(NAMESPACE, key)
    except Exception:
        log.warning("stage cache unreadable; asking the LLM again", exc_info=log.isEnabledFor(10))
        return None
    return value.get("answer") if isinstance(value, dict) else None


def _store_answer(cache: StageCache, key: str, answer: Any) -> None:
    try:
        cache.put(NAMESPACE, key, {"answer": answer})
    except Exception:  # applied whether or not it is kept
        log.warning(
            "could not keep an LLM answer in the stage cache", exc_info=log.isEnabledFor(10)
        )


def _failure_line(failures: dict[int, str], total: int) -> str:
    """One line for the record and the log: how much is not enhanced, and the first why."""
    first = failures[min(failures)]
    if len(failures) == total:
        return f"not enhanced, v1 text kept: {first}"
    return f"{len(failures)} of {total} chunks not enhanced (v1 text kept): {first}"
