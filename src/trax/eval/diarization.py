"""Diarization error rate with pyannote.metrics, against an RTTM reference.

DER = (missed speech + false alarm + speaker confusion) / reference speech.
The collar is pyannote's: its full width, centred on each reference boundary
(``--collar 0.5`` ignores ±0.25 s). Overlapping speech is scored unless
``skip_overlap`` is set.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trax.eval import EvalError
from trax.media import MEDIA_EXTENSIONS

if TYPE_CHECKING:
    from pyannote.core import Annotation, Timeline


@dataclass(frozen=True, slots=True)
class DiarizationScore:
    uri: str
    total_s: float  # reference speech scored
    missed_s: float
    false_alarm_s: float
    confusion_s: float

    @property
    def der(self) -> float:
        errors = self.missed_s + self.false_alarm_s + self.confusion_s
        return errors / self.total_s if self.total_s else 0.0


@dataclass(slots=True)
class DiarizationReport:
    collar: float
    skip_overlap: bool
    files: list[DiarizationScore] = field(default_factory=list)

    @property
    def overall(self) -> DiarizationScore:
        return DiarizationScore(
            "overall",
            sum(f.total_s for f in self.files),
            sum(f.missed_s for f in self.files),
            sum(f.false_alarm_s for f in self.files),
            sum(f.confusion_s for f in self.files),
        )

    def to_dict(self) -> dict[str, object]:
        def row(score: DiarizationScore) -> dict[str, object]:
            return {
                "uri": score.uri,
                "der": round(score.der, 5),
                "total_s": round(score.total_s, 3),
                "missed_s": round(score.missed_s, 3),
                "false_alarm_s": round(score.false_alarm_s, 3),
                "confusion_s": round(score.confusion_s, 3),
            }

        return {
            "collar": self.collar,
            "skip_overlap": self.skip_overlap,
            "overall": row(self.overall),
            "files": [row(f) for f in self.files],
        }


def _fields(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalError(f"file not found: {path}") from None
    except UnicodeDecodeError:
        raise EvalError(f"{path} is not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith("#"):
            yield number, line.split()


def read_rttm(path: Path) -> dict[str, Annotation]:
    """``SPEAKER <uri> <channel> <onset> <duration> <NA> <NA> <label> …`` lines by file."""
    from pyannote.core import Annotation, Segment

    annotations: dict[str, Annotation] = {}
    for number, parts in _fields(path):
        if len(parts) < 8 or parts[0] != "SPEAKER":
            raise EvalError(f"{path}:{number}: not an RTTM SPEAKER line")
        uri, label = parts[1], parts[7]
        try:
            onset, duration = float(parts[3]), float(parts[4])
        except ValueError:
            raise EvalError(f"{path}:{number}: onset and duration must be numbers") from None
        if duration < 0 or onset < 0:
            raise EvalError(f"{path}:{number}: negative onset or duration")
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        annotation[Segment(onset, onset + duration), f"{number}"] = label
    if not annotations:
        raise EvalError(f"{path} holds no SPEAKER lines")
    return annotations


def read_uem(path: Path) -> dict[str, Timeline]:
    """``<uri> <channel> <start> <end>`` lines: the regions to score."""
    from pyannote.core import Segment, Timeline

    regions: dict[str, Timeline] = {}
    for number, parts in _fields(path):
        if len(parts) != 4:
            raise EvalError(f"{path}:{number}: expected '<uri> <channel> <start> <end>'")
        try:
            start, end = float(parts[2]), float(parts[3])
        except ValueError:
            raise EvalError(f"{path}:{number}: start and end must be numbers") from None
        regions.setdefault(parts[0], Timeline(uri=parts[0])).add(Segment(start, end))
    return regions


def evaluate_diarization(
    directory: Path,
    reference: dict[str, Annotation],
    hypothesis: dict[str, Annotation],
    uem: dict[str, Timeline] | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> DiarizationReport:
    """Score every reference file; each must have audio in ``directory`` and a hypothesis."""
    from pyannote.core import Annotation
    from pyannote.metrics.diarization import DiarizationErrorRate

    if not directory.is_dir():
        raise EvalError(f"not a directory: {directory}")
    audio = {p.stem for p in directory.iterdir() if p.suffix.lower() in MEDIA_EXTENSIONS}
    missing = sorted(set(reference) - audio)
    if missing:
        raise EvalError(f"reference names audio not found in {directory}: {', '.join(missing[:5])}")
    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    report = DiarizationReport(collar, skip_overlap)
    for uri in sorted(reference):
        # A file the system left out is scored as all missed, not skipped.
        hyp = hypothesis.get(uri, Annotation(uri=uri))
        with warnings.catch_warnings():
            # Without a UEM pyannote scores the union of both extents, and says so
            # every file; the report states what was scored instead.
            warnings.filterwarnings("ignore", message="'uem' was approximated")
            detail = metric(reference[uri], hyp, uem=(uem or {}).get(uri), detailed=True)
        report.files.append(
            DiarizationScore(
                uri,
                detail["total"],
                detail["missed detection"],
                detail["false alarm"],
                detail["confusion"],
            )
        )
    return report
