"""The languages Whisper knows: codes, names, and the check made before any work.

``-l DE``, ``-l german`` and ``-l de`` mean the same; ``-l xx`` or a language an
English-only model cannot transcribe is refused in one line before a file is
touched (it used to print a traceback per file, or store transcripts made in
the wrong language).
"""

from __future__ import annotations

from trax.errors import TraxError

# Whisper's own table (openai/whisper tokenizer.py), code → English name.
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}  # fmt: skip

# Other names people use for the same languages (also Whisper's).
_ALIASES = {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht",
    "letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
    "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}  # fmt: skip

_BY_NAME = {name: code for code, name in LANGUAGES.items()} | _ALIASES


class LanguageError(TraxError, ValueError):
    """A language Trax cannot use with this model; the message is one line."""


def language_code(value: str) -> str:
    """The Whisper code for a code or an English name, in any case (``DE``, ``German``)."""
    key = " ".join(value.strip().lower().replace("_", " ").split())
    if key in LANGUAGES:
        return key
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise LanguageError(
        f"unknown language {value!r}: give a code or a name Whisper knows, "
        "such as en, de, fr, es or 'german' (99 languages)"
    )


def english_only(model: str) -> bool:
    """Whisper's ``*.en`` models (``tiny.en``, ``distil-small.en``) transcribe English only."""
    return model.rstrip("/").lower().endswith(".en")


def checked_language(language: str | None, model: str) -> str | None:
    """``language`` as a code, checked against what ``model`` can transcribe (None: detect)."""
    if language is None:
        return None
    code = language_code(language)
    if code != "en" and english_only(model):
        raise LanguageError(
            f"{model} transcribes English only; for {LANGUAGES[code]} ({code}) "
            "use a multilingual model such as --model base"
        )
    return code
