"""What is told about each turn as it happens: the stopwatch (its timings), the transcript, the display.

An observer overrides the events it cares about; each event is told to every observer, in the order
they were given: the stopwatch first (so the timings are in the result before it is written), then the
transcript (which must keep the turn even if the terminal has gone away), then the display.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from talkgpt4all.pipeline import TurnResult


class TurnObserver:
    """Told about each turn as it happens. Every event does nothing unless overridden."""

    def turn_started(self, result: TurnResult) -> None:
        """The user's words are known; the reply is about to be asked for."""

    def reply_token(self, text: str) -> None:
        """The next piece of the reply, as the model writes it."""

    def sentence_ready(self, sentence: str) -> None:
        """A piece of the reply is complete and goes to the voice (the first may be a clause)."""

    def tool_started(self, name: str) -> None:
        """The reply called a tool, which runs now."""

    def audio_started(self) -> None:
        """The reply's first audio was handed to the speaker or written (from the playback thread)."""

    def reply_written(self, speaking: bool) -> None:
        """The reply's text is complete; with speaking, its voice plays on."""

    def turn_ended(self, result: TurnResult) -> None:
        """The turn is over: answered, cut off or failed (result.error)."""

    def turn_taken_back(self, result: TurnResult) -> None:
        """The user spoke on before the reply made a sound: the turn never happened, and what they said
        begins the next one."""


class Observers(TurnObserver):
    """Many observers as one: each event goes to each, in order."""

    def __init__(self, observers: list[TurnObserver]) -> None:
        self.observers = observers

    def turn_started(self, result: TurnResult) -> None:
        for observer in self.observers:
            observer.turn_started(result)

    def reply_token(self, text: str) -> None:
        for observer in self.observers:
            observer.reply_token(text)

    def sentence_ready(self, sentence: str) -> None:
        for observer in self.observers:
            observer.sentence_ready(sentence)

    def tool_started(self, name: str) -> None:
        for observer in self.observers:
            observer.tool_started(name)

    def audio_started(self) -> None:
        for observer in self.observers:
            observer.audio_started()

    def reply_written(self, speaking: bool) -> None:
        for observer in self.observers:
            observer.reply_written(speaking)

    def turn_ended(self, result: TurnResult) -> None:
        for observer in self.observers:
            observer.turn_ended(result)

    def turn_taken_back(self, result: TurnResult) -> None:
        for observer in self.observers:
            observer.turn_taken_back(result)


class Stopwatch(TurnObserver):
    """The turn's timings, in seconds from the true end of the user's speech (result.speech_end)."""

    def __init__(self) -> None:
        self._result: TurnResult | None = None

    def _since(self) -> float:
        assert self._result is not None
        return time.perf_counter() - self._result.speech_end

    def turn_started(self, result: TurnResult) -> None:
        self._result = result

    def reply_token(self, text: str) -> None:
        if self._result is not None and self._result.timings.llm_first_token is None:
            self._result.timings.llm_first_token = self._since()

    def sentence_ready(self, sentence: str) -> None:
        if self._result is not None and self._result.timings.first_sentence is None:
            self._result.timings.first_sentence = self._since()

    def audio_started(self) -> None:
        if self._result is not None and self._result.timings.first_audio is None:
            self._result.timings.first_audio = self._since()

    def turn_ended(self, result: TurnResult) -> None:
        if self._result is result and result.error is None:
            result.timings.total = self._since()
        self._result = None

    def turn_taken_back(self, result: TurnResult) -> None:
        self._result = None
