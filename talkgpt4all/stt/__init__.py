"""Speech to text: one Protocol, and a registry from engine name to factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from talkgpt4all.errors import UnknownEngineError

if TYPE_CHECKING:
    from talkgpt4all.settings import SpeechToText


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 speech; language None means detect it (among the languages
        the engine was given, if any)."""


def _faster_whisper(settings: SpeechToText, threads: int | None) -> Transcriber:
    from talkgpt4all.stt.faster_whisper import FasterWhisperTranscriber

    return FasterWhisperTranscriber(settings.model, threads, languages=settings.heard_languages)


def _openai_whisper(settings: SpeechToText, threads: int | None) -> Transcriber:
    from talkgpt4all.config import DEFAULT_WHISPER
    from talkgpt4all.stt.openai_whisper import OpenAIWhisperTranscriber

    return OpenAIWhisperTranscriber(settings.model or DEFAULT_WHISPER, threads, settings.heard_languages)


def _server(settings: SpeechToText, threads: int | None) -> Transcriber:
    from talkgpt4all.errors import UsageError
    from talkgpt4all.stt.remote import RemoteTranscriber

    if not settings.url:
        raise UsageError("--stt openai needs --stt-url, e.g. http://127.0.0.1:8000/v1 (speaches)")
    return RemoteTranscriber(settings.url, settings.model, settings.api_key, settings.heard_languages)


ENGINES: dict[str, Callable[[SpeechToText, int | None], Transcriber]] = {
    "faster-whisper": _faster_whisper,
    "openai-whisper": _openai_whisper,
    "openai": _server,  # any OpenAI-compatible /v1/audio/transcriptions
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("stt", name, sorted(ENGINES))


def make_transcriber(settings: SpeechToText, threads: int | None = None) -> Transcriber:
    """Load the section's engine with its model (None: the default model), on `threads` CPU threads
    (None: all). Loading happens here, once."""
    check_engine(settings.engine)
    return ENGINES[settings.engine](settings, threads)
