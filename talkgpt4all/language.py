"""The language of a turn, and what follows from it: the reply's language and Chinese script.

A spoken turn's language is what Whisper heard; a typed turn's comes from its script (Han characters mean
Chinese). The model is asked to answer in that language, with a short note after the user's words, and
the voice follows the turn's language. `--language` pins it.
"""

from __future__ import annotations

import contextlib
import functools
import locale
import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from talkgpt4all.errors import MissingDependencyError
from talkgpt4all.stt import Transcript
from talkgpt4all.text import script

if TYPE_CHECKING:
    import numpy as np

    from talkgpt4all.stt import Transcriber

log = logging.getLogger("talkgpt4all")

# The languages Whisper knows, by the code --language takes (its tokenizer's own table).
# fmt: off
WHISPER_LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian",
    "kn": "kannada", "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque",
    "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian", "bs": "bosnian",
    "kk": "kazakh", "sq": "albanian", "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi",
    "si": "sinhala", "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati",
    "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese", "ht": "haitian creole",
    "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit",
    "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy",
    "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
    "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
# fmt: on

# The note that asks for the answer's language, in that language: small models follow an instruction
# in the language they are to answer in more readily than one in English. Whisper's codes.
_ANSWER_IN = {
    "en": "Please answer in English.",
    "zh": "请用简体中文回答。",
    "zh-traditional": "請用繁體中文回答。",
    "ja": "日本語で答えてください。",
    "ko": "한국어로 대답해 주세요.",
    "fr": "Réponds en français, s'il te plaît.",
    "de": "Bitte antworte auf Deutsch.",
    "es": "Por favor, responde en español.",
    "it": "Per favore, rispondi in italiano.",
    "pt": "Por favor, responda em português.",
    "ru": "Пожалуйста, ответь по-русски.",
}


ANY = "any"  # --languages any: every language Whisper knows


def locale_language(env: Mapping[str, str] | None = None) -> str | None:
    """The language of the system's locale, as a Whisper code (zh_CN.UTF-8 and Chinese (Simplified)_China
    are "zh"), or None when it names none (C, POSIX)."""
    system = env is None
    env = os.environ if env is None else env
    # The first of these that is set is the locale messages are in (POSIX); Windows sets none of them.
    name = next((env[key] for key in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(key)), "")
    if not name and system:
        with contextlib.suppress(ValueError):
            name = locale.getlocale()[0] or ""  # Windows: "Chinese (Simplified)_China", or zh_CN
    head = name.split(".")[0].split("_")[0].split("-")[0].split(" ")[0].strip().lower()
    if head in WHISPER_LANGUAGES:
        return head
    return next((code for code, language in WHISPER_LANGUAGES.items() if language == head), None)


def default_languages(env: Mapping[str, str] | None = None) -> str:
    """--languages by default: English, and the locale's language beside it."""
    here = locale_language(env)
    return "en" if here in (None, "en") else f"en,{here}"


def allowed_languages(languages: str | None) -> tuple[str, ...] | None:
    """The codes of --languages; None: any language."""
    if languages is None or languages == ANY:
        return None
    return tuple(code for code in languages.split(",") if code)


def most_probable(probabilities: Iterable[tuple[str, float]], allowed: tuple[str, ...] | None) -> str | None:
    """Of Whisper's (code, probability) pairs, the most probable language among the allowed ones (all,
    for None); None if Whisper gave none of them."""
    ranked = sorted(probabilities, key=lambda pair: pair[1], reverse=True)
    return next((code for code, _ in ranked if allowed is None or code in allowed), None)


def script_language(text: str) -> str | None:
    """The language a typed text's script gives away: "ja" for kana, "ko" for hangul, "zh" for Han
    characters alone; None for anything else (Latin script says little about the language)."""
    scripts = {script(ch) for ch in text}
    for found, language in (("kana", "ja"), ("hangul", "ko"), ("han", "zh")):
        if found in scripts:
            return language
    return None


def answer_note(language: str | None, previous: str | None, zh_script: str) -> str | None:
    """The note that asks the model to answer in the turn's language, if one is needed: for any language
    but English, and for English after a turn in another language. None: nothing to add."""
    if language is None or (language == "en" and previous in (None, "en")):
        return None
    key = "zh-traditional" if language == "zh" and zh_script == "traditional" else language
    return _ANSWER_IN.get(key)


def asked(user: str, note: str | None) -> str:
    """The user's message as the model gets it."""
    return f"{user}\n\n({note})" if note else user


@functools.lru_cache(maxsize=2)
def _converter(config: str) -> object:
    try:
        import opencc
    except ImportError as exc:
        raise MissingDependencyError(
            "Chinese script conversion needs OpenCC: pip install opencc (requirements.txt has it)"
        ) from exc
    return opencc.OpenCC(config)


def to_script(text: str, zh_script: str) -> str:
    """Chinese text in the script asked for (OpenCC's phrase-aware conversion, not character by
    character: 裡麵包 becomes 里面包, "inside the bread")."""
    converter = _converter("t2s" if zh_script == "simplified" else "s2t")
    return str(converter.convert(text))  # type: ignore[attr-defined]


class ChineseScript:
    """A transcriber whose Chinese comes out in one script. Whisper often writes traditional characters
    for Mandarin (开放时间 as 開放時間); mainland users expect simplified."""

    def __init__(self, transcriber: Transcriber, zh_script: str) -> None:
        self.transcriber, self.zh_script = transcriber, zh_script
        to_script("", zh_script)  # load OpenCC now, not at the first Chinese turn

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        heard = self.transcriber.transcribe(audio, language)
        if heard.language == "zh" or (heard.language is None and script_language(heard.text) == "zh"):
            return Transcript(to_script(heard.text, self.zh_script), heard.language)
        return heard
