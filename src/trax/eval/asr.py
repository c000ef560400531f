"""Word error rate of a pipeline (or of raw faster-whisper) against human references.

Both sides are normalised with Whisper's English text normaliser (or the basic
one for other languages) before scoring: references differ in style (case,
punctuation, spelled-out numbers) and raw strings would score the style, not
the recognition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trax.eval import EvalError
from trax.media import MEDIA_EXTENSIONS


@dataclass(frozen=True, slots=True)
class FileScore:
    name: str
    reference: str  # normalised
    hypothesis: str  # normalised
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    cached: bool = False

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return (
            self.errors / self.reference_words if self.reference_words else float(self.errors > 0)
        )


@dataclass(slots=True)
class AsrReport:
    system: str
    files: list[FileScore] = field(default_factory=list)

    def _total(self, attribute: str) -> int:
        return sum(int(getattr(f, attribute)) for f in self.files)

    @property
    def substitutions(self) -> int:
        return self._total("substitutions")

    @property
    def deletions(self) -> int:
        return self._total("deletions")

    @property
    def insertions(self) -> int:
        return self._total("insertions")

    @property
    def reference_words(self) -> int:
        return self._total("reference_words")

    @property
    def wer(self) -> float:
        words = self.reference_words
        return (self.substitutions + self.deletions + self.insertions) / words if words else 0.0

    @property
    def audio_s(self) -> float:
        return sum(f.duration_s for f in self.files)

    @property
    def elapsed_s(self) -> float:
        return sum(f.elapsed_s for f in self.files)

    def to_dict(self) -> dict[str, object]:
        return {
            "system": self.system,
            "wer": round(self.wer, 5),
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.reference_words,
            "audio_s": round(self.audio_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "files": [
                {
                    "name": f.name,
                    "wer": round(f.wer, 5),
                    "substitutions": f.substitutions,
                    "deletions": f.deletions,
                    "insertions": f.insertions,
                    "reference_words": f.reference_words,
                    "cached": f.cached,
                    "reference": f.reference,
                    "hypothesis": f.hypothesis,
                }
                for f in self.files
            ],
        }


def read_references(path: Path) -> dict[str, str]:
    """``<file stem>\\t<text>`` per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalError(f"reference file not found: {path}") from None
    except UnicodeDecodeError:
        raise EvalError(f"{path} is not UTF-8 text") from None
    references: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        stem, tab, text = line.partition("\t")
        if not tab or not stem.strip() or not text.strip():
            raise EvalError(f"{path}:{number}: expected '<file stem><TAB><reference text>'")
        if stem in references:
            raise EvalError(f"{path}:{number}: '{stem}' appears twice")
        references[stem.strip()] = text.strip()
    if not references:
        raise EvalError(f"{path} holds no references")
    return references


def match_audio(
    directory: Path, references: dict[str, str]
) -> tuple[list[tuple[str, Path]], list[str]]:
    """The audio file of every reference, by stem, and the references without one.

    Clips missing from the folder are left out of the score (the caller warns), so a
    reference file shared by several folders still scores the clips each one has.
    """
    if not directory.is_dir():
        raise EvalError(f"not a directory: {directory}")
    audio = {p.stem: p for p in sorted(directory.iterdir()) if p.suffix.lower() in MEDIA_EXTENSIONS}
    if not audio:
        raise EvalError(f"no media files in {directory}")
    found = [(stem, audio[stem]) for stem in sorted(references) if stem in audio]
    if not found:
        raise EvalError(f"none of the {len(references)} reference(s) names a clip in {directory}")
    return found, sorted(set(references) - set(audio))


def normaliser(language: str = "en") -> Callable[[str], str]:
    if language == "en":
        from whisper_normalizer.english import EnglishTextNormalizer

        english: Callable[[str], str] = EnglishTextNormalizer()
        return english
    from whisper_normalizer.basic import BasicTextNormalizer

    basic: Callable[[str], str] = BasicTextNormalizer()
    return basic


def score_file(name: str, reference: str, hypothesis: str) -> FileScore:
    """Alignment counts for one normalised pair (an empty reference counts insertions)."""
    ref_words = reference.split()
    hyp_words = hypothesis.split()
    if not ref_words:
        return FileScore(name, reference, hypothesis, 0, 0, len(hyp_words), 0)
    import jiwer

    out = jiwer.process_words(reference, hypothesis)
    return FileScore(
        name,
        reference,
        hypothesis,
        out.substitutions,
        out.deletions,
        out.insertions,
        len(ref_words),
    )


Recogniser = Callable[[Path], tuple[str, float, bool]]
"""Turns one audio file into (text, duration in seconds, reused from store)."""


def evaluate(
    system: str,
    clips: Iterable[tuple[str, Path]],
    references: dict[str, str],
    recognise: Recogniser,
    language: str = "en",
    on_file: Callable[[FileScore], None] | None = None,
) -> AsrReport:
    normalise = normaliser(language)
    report = AsrReport(system)
    for stem, path in clips:
        started = time.perf_counter()
        text, duration, cached = recognise(path)
        elapsed = time.perf_counter() - started
        scored = score_file(stem, normalise(references[stem]), normalise(text))
        scored = FileScore(
            scored.name,
            scored.reference,
            scored.hypothesis,
            scored.substitutions,
            scored.deletions,
            scored.insertions,
            scored.reference_words,
            duration,
            elapsed,
            cached,
        )
        report.files.append(scored)
        if on_file is not None:
            on_file(scored)
    return report


def raw_faster_whisper(
    model_location: str, beam_size: int = 5, device: str = "cpu", compute_type: str = "int8"
) -> Recogniser:
    """The reference system: faster-whisper as its README uses it, nothing of Trax's."""
    from faster_whisper import WhisperModel

    model = WhisperModel(model_location, device=device, compute_type=compute_type)

    def recognise(path: Path) -> tuple[str, float, bool]:
        segments, info = model.transcribe(str(path), beam_size=beam_size)
        return " ".join(s.text.strip() for s in segments), float(info.duration), False

    return recognise
