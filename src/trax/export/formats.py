"""The concrete exporters: each turns a ``Transcript`` into the text of one file."""

from __future__ import annotations

import json
from pathlib import PurePath

from trax.core import Transcript
from trax.export.subtitles import SubtitleOptions, build_cues, render_srt, render_vtt
from trax.payload import to_payload


class TxtExporter:
    """Plain text, one segment per line."""

    name = "txt"
    extension = ".txt"

    def render(self, transcript: Transcript) -> str:
        lines = [s.text.strip() for s in transcript.segments if s.text.strip()]
        return "".join(f"{line}\n" for line in lines)


class SrtExporter:
    """SubRip subtitles: cues laid out and timed by ``options`` (defaults if omitted)."""

    name = "srt"
    extension = ".srt"

    def __init__(self, options: SubtitleOptions | None = None) -> None:
        self.options = SubtitleOptions() if options is None else options

    def render(self, transcript: Transcript) -> str:
        return render_srt(build_cues(transcript.segments, self.options))


class VttExporter:
    """WebVTT subtitles: cues laid out and timed by ``options`` (defaults if omitted)."""

    name = "vtt"
    extension = ".vtt"

    def __init__(self, options: SubtitleOptions | None = None) -> None:
        self.options = SubtitleOptions() if options is None else options

    def render(self, transcript: Transcript) -> str:
        return render_vtt(build_cues(transcript.segments, self.options))


class JsonExporter:
    """The versioned payload, so an exported file can be loaded back."""

    name = "json"
    extension = ".json"

    def render(self, transcript: Transcript) -> str:
        return json.dumps(to_payload(transcript), ensure_ascii=False, indent=2) + "\n"


class TsvExporter:
    """Whisper's tsv layout: integer milliseconds, one segment per row."""

    name = "tsv"
    extension = ".tsv"

    def render(self, transcript: Transcript) -> str:
        rows = ["start\tend\ttext"]
        for s in transcript.segments:
            # A tab or newline inside the text would shift or split the row.
            text = " ".join(s.text.replace("\t", " ").split())
            rows.append(f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{text}")
        return "\n".join(rows) + "\n"


def _clock(seconds: float) -> str:
    hours, rest = divmod(int(max(seconds, 0.0)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class MarkdownExporter:
    """A readable document: heading, run metadata, one timestamped paragraph per segment."""

    name = "md"
    extension = ".md"

    def render(self, transcript: Transcript) -> str:
        # PurePath: the stored path may come from another OS; only its name is shown.
        title = PurePath(transcript.media.path).name or transcript.media.path
        parts = [
            f"# {title}",
            "\n".join(
                [
                    f"- Duration: {_clock(transcript.duration_s)}",
                    f"- Language: {transcript.language}",
                    f"- Model: {transcript.model_id}",
                    f"- Pipeline: {transcript.settings.pipeline}",
                ]
            ),
        ]
        for s in transcript.segments:
            text = " ".join(s.text.split())
            if not text:
                continue
            speaker = f"**{s.speaker}:** " if s.speaker else ""
            parts.append(f"**[{_clock(s.start)}]** {speaker}{text}")
        return "\n\n".join(parts) + "\n"
