"""The language of a turn, and what follows from it: the reply's language and Chinese script.

A spoken turn's language is what Whisper heard; a typed turn's comes from its script (Han characters mean
Chinese). The model is asked to answer in that language, with a short note after the user's words, and
the voice follows the turn's language. `--language` pins it.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from talkgpt4all.errors import MissingDependencyError
from talkgpt4all.stt import Transcript

if TYPE_CHECKING:
    import numpy as np

    from talkgpt4all.stt import Transcriber

log = logging.getLogger("talkgpt4all")

SCRIPTS = ("simplified", "traditional")

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


def _in(ch: str, *ranges: tuple[str, str]) -> bool:
    return any(lo <= ch <= hi for lo, hi in ranges)


def script_language(text: str) -> str | None:
    """The language a typed text's script gives away: "ja" for kana, "ko" for hangul, "zh" for Han
    characters alone; None for anything else (Latin script says little about the language)."""
    if any(_in(ch, ("\u3040", "\u30ff")) for ch in text):
        return "ja"
    if any(_in(ch, ("\uac00", "\ud7af"), ("\u1100", "\u11ff")) for ch in text):
        return "ko"
    if any(_in(ch, ("\u4e00", "\u9fff"), ("\u3400", "\u4dbf")) for ch in text):
        return "zh"
    return None


def answer_note(language: str | None, previous: str | None, zh_script: str = "simplified") -> str | None:
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

    def __init__(self, transcriber: Transcriber, zh_script: str = "simplified") -> None:
        self.transcriber, self.zh_script = transcriber, zh_script
        to_script("", zh_script)  # load OpenCC now, not at the first Chinese turn

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        heard = self.transcriber.transcribe(audio, language)
        if heard.language == "zh" or (heard.language is None and script_language(heard.text) == "zh"):
            return Transcript(to_script(heard.text, self.zh_script), heard.language)
        return heard
