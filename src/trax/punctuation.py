"""Where written text pauses: sentence and clause ends, as segments and subtitles break."""

from __future__ import annotations

from typing import Literal

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "—", "–", "，", "、", "；", "：")
CLOSERS = "\"')]}»”’」』"
"""Closing quotes and brackets: after a full stop they still end the sentence."""


def ending(text: str) -> Literal["sentence", "clause", ""]:
    """'sentence', 'clause' or '' for the punctuation that ends ``text``."""
    text = text.rstrip(CLOSERS)
    if text.endswith(SENTENCE_END):
        return "sentence"
    if text.endswith(CLAUSE_END):
        return "clause"
    return ""
