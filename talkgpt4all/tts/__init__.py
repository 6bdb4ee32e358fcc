"""Text to speech: one Protocol, and a registry from engine name to factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from talkgpt4all.audio import Audio
from talkgpt4all.errors import UnknownEngineError


class Synthesizer(Protocol):
    def synthesize(self, text: str, language: str | None = None) -> Audio:
        """Speak one sentence into audio. language (a Whisper code such as "en" or "zh") is a hint."""


def _espeak(voice: str | None, rate: int | None) -> Synthesizer:
    from talkgpt4all.tts.commands import Espeak

    return Espeak(voice, rate)


def _say(voice: str | None, rate: int | None) -> Synthesizer:
    from talkgpt4all.tts.commands import Say

    return Say(voice, rate)


def _wsay(voice: str | None, rate: int | None) -> Synthesizer:
    from talkgpt4all.tts.commands import Wsay

    return Wsay(voice, rate)


ENGINES: dict[str, Callable[[str | None, int | None], Synthesizer] | None] = {
    "espeak": _espeak,
    "say": _say,
    "wsay": _wsay,
    "none": None,  # silent: replies are only printed
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("tts", name, sorted(ENGINES))


def make_synthesizer(name: str, voice: str | None = None, rate: int | None = None) -> Synthesizer | None:
    """The named engine, checked to be installed; None for "none"."""
    check_engine(name)
    factory = ENGINES[name]
    return factory(voice, rate) if factory else None
