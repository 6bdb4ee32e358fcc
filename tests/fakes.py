"""Fakes for unit tests of the pipeline logic. The end-to-end tests use the real engines."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator

import numpy as np

from talkgpt4all.audio import Audio
from talkgpt4all.audio.vad import CHUNK, Segmenter
from talkgpt4all.conversation import Conversation
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.pipeline import Display, Engines, Session, TurnResult
from talkgpt4all.settings import Config
from talkgpt4all.stt import Transcript


class FakeChat:
    """A chat model that replies with canned texts, one per call, streamed a word at a time."""

    context_size = 1000
    shifts_context = True
    last_evaluated: int | None = None

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.calls: list[list[dict[str, str]]] = []
        self.pulled = 0

    def enqueue(self, *replies: str) -> FakeChat:
        self.replies.extend(replies)
        return self

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(
        self, messages: list[dict[str, str]], options: GenerationOptions
    ) -> Generator[str, None, None]:
        self.calls.append([dict(m) for m in messages])
        reply = self.replies.pop(0)
        for i, word in enumerate(reply.split(" ")):
            self.pulled += 1
            yield word if i == 0 else " " + word

    def close(self) -> None:
        pass


class FakeTranscriber:
    def __init__(self, text: str, language: str = "en") -> None:
        self.text, self.language, self.calls = text, language, 0

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.calls += 1
        return Transcript(self.text, language or self.language)


class FakeSynth:
    """Audio whose length encodes the sentence, so a test can tell what was spoken."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.spoken: list[str] = []
        self.seconds = seconds  # how long synthesis takes

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        if self.seconds:
            threading.Event().wait(self.seconds)
        self.spoken.append(text)
        return Audio(np.full(len(text), 0.1, np.float32), 16000)


class FakeSink:
    """Records what it is given. With play_seconds, write() takes that long, like a speaker, unless
    stop() cuts it short; on_write(n) runs as the n-th piece starts playing."""

    def __init__(self, play_seconds: float = 0.0, on_write: Callable[[int], None] | None = None) -> None:
        self.events: list[str] = []
        self.play_seconds = play_seconds
        self.on_write = on_write
        self.writes = 0
        self.stopped = threading.Event()

    def prepare(self, sample_rate: int) -> None:
        self.events.append(f"prepare {sample_rate}")

    def begin_reply(self, turn: int) -> None:
        self.stopped.clear()
        self.events.append(f"begin {turn}")

    def write(self, audio: Audio) -> None:
        self.writes += 1
        self.events.append(f"write {len(audio.samples)}")
        if self.on_write:
            self.on_write(self.writes)
        if self.play_seconds:
            self.stopped.wait(self.play_seconds)

    def written(self) -> list[str]:
        """The "write N" events: the length of each piece of audio played, in order."""
        return [e for e in self.events if e.startswith("write")]

    def end_reply(self) -> None:
        self.events.append("end")

    def stop(self) -> None:
        self.stopped.set()
        self.events.append("stop")

    def close(self) -> None:
        self.events.append("close")


class FakeDisplay(Display):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current = ""
        self.timed = 0
        self.errors: list[str] = []

    def turn_started(self, result: TurnResult) -> None:
        self.lines.append(f"You: {result.user}")

    def reply_token(self, text: str) -> None:
        self.current += text

    def turn_ended(self, result: TurnResult) -> None:
        self.lines.append(f"AI: {self.current}" + (" [interrupted]" if result.cut_off else ""))
        self.current = ""
        if result.error:
            self.errors.append(result.error)
        else:
            self.timed += 1

    def turn_taken_back(self, result: TurnResult) -> None:
        self.lines.append(f"(went on from: {result.user})")
        self.current = ""

    def notice(self, text: str) -> None:
        self.lines.append(text)


def settings(**sections: dict[str, object]) -> Config:
    """A Config with these settings (by section: stt={"language": "zh"}), the rest the defaults."""
    return Config.build(sections)


HEADLESS = settings(io={"text": True})  # Ctrl-C ends the run, not only the reply


def make_session(
    chat: FakeChat | None = None,
    display: FakeDisplay | None = None,
    *,
    transcriber: object = None,
    synthesizer: object = None,
    sinks: list | None = None,
    config: Config | None = None,
    **kw: object,
) -> Session:
    """A session on fakes (or on the real engines given), interactive unless config says otherwise."""
    engines = Engines(chat or FakeChat(), transcriber, synthesizer, sinks or [])  # type: ignore[arg-type]
    return Session(engines, Conversation("be brief"), display or FakeDisplay(), config, **kw)  # type: ignore[arg-type]


def feed_all(segmenter: Segmenter, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Feed a whole recording to a segmenter, a chunk at a time; each utterance it cuts, with the audio
    time (in samples) at which it ended."""
    found = []
    for start in range(0, len(samples) - CHUNK + 1, CHUNK):
        utterance = segmenter.feed(samples[start : start + CHUNK])
        if utterance is not None:
            found.append((segmenter.samples_seen, utterance))
    return found
