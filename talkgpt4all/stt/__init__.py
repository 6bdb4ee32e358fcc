"""Speech to text: one Protocol, and a registry from engine name to factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from talkgpt4all.errors import UnknownEngineError


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 speech; language None means detect it."""


def _faster_whisper(model: str | None, threads: int | None) -> Transcriber:
    from talkgpt4all.stt.faster_whisper import FasterWhisperTranscriber

    return FasterWhisperTranscriber(model, threads)


def _openai_whisper(model: str | None, threads: int | None) -> Transcriber:
    from talkgpt4all.config import DEFAULT_WHISPER
    from talkgpt4all.stt.openai_whisper import OpenAIWhisperTranscriber

    return OpenAIWhisperTranscriber(model or DEFAULT_WHISPER, threads)


ENGINES: dict[str, Callable[[str | None, int | None], Transcriber]] = {
    "faster-whisper": _faster_whisper,
    "openai-whisper": _openai_whisper,
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("stt", name, sorted(ENGINES))


def make_transcriber(name: str, model: str | None, threads: int | None = None) -> Transcriber:
    """Load the named engine with a model name or path (None: the default model). Loading happens
    here, once."""
    check_engine(name)
    return ENGINES[name](model, threads)
