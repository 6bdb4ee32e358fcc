"""One turn of the conversation: speech -> text -> reply tokens -> sentences -> speech.

Each stage is a generator pulled by the next, so the first sentence is spoken while the model is
still to write the second. Every timing counts from the end of the user's speech.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from talkgpt4all.audio import Audio, AudioSink, is_silent
from talkgpt4all.conversation import Conversation
from talkgpt4all.llm import ChatModel, GenerationOptions
from talkgpt4all.stt import Transcriber, Transcript
from talkgpt4all.text import has_words, sentences, speakable
from talkgpt4all.tts import Synthesizer

log = logging.getLogger("talkgpt4all")


class Display(Protocol):
    """What the user sees. The CLI implements it; the pipeline never prints."""

    def user(self, text: str) -> None: ...

    def reply_token(self, text: str) -> None: ...

    def reply_end(self, interrupted: bool) -> None: ...

    def notice(self, text: str) -> None: ...


@dataclass
class Timings:
    stt: float | None = None
    llm_first_token: float | None = None
    first_audio: float | None = None
    total: float | None = None


@dataclass
class TurnResult:
    turn: int
    user: str
    language: str | None
    reply: str
    prompt_tokens: int
    timings: Timings = field(default_factory=Timings)
    interrupted: bool = False

    def to_json(self) -> str:
        record = asdict(self)
        record["timings"] = {k: None if v is None else round(v, 3) for k, v in record["timings"].items()}
        if not self.interrupted:
            del record["interrupted"]
        return json.dumps(record, ensure_ascii=False)


class TranscriptWriter:
    """--transcript: one JSON object a completed turn, appended and flushed as the turn ends."""

    def __init__(self, path: Path) -> None:
        from talkgpt4all.errors import TalkError

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise TalkError(f"cannot write --transcript {path}: {exc.strerror}") from exc

    def write(self, result: TurnResult) -> None:
        self._file.write(result.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


DIDNT_CATCH = "Sorry, I didn't catch that. Please try again."


class Session:
    """A conversation with loaded engines. Engines are loaded before it is made, once."""

    def __init__(
        self,
        chat: ChatModel,
        conversation: Conversation,
        display: Display,
        *,
        transcriber: Transcriber | None = None,
        synthesizer: Synthesizer | None = None,
        sinks: list[AudioSink] | None = None,
        transcript: TranscriptWriter | None = None,
        options: GenerationOptions | None = None,
        language: str | None = None,
        interruptible: bool = False,
    ) -> None:
        self.chat = chat
        self.conversation = conversation
        self.display = display
        self.transcriber = transcriber
        self.synthesizer = synthesizer
        self.sinks = sinks or []
        self.transcript = transcript
        self.options = options or GenerationOptions()
        self.language = language
        self.interruptible = interruptible  # Ctrl-C ends only the reply (interactive mode)
        self.turns = 0

    def hear(self, audio: np.ndarray, speech_end: float) -> TurnResult | None:
        """A spoken turn; None when nothing was said (and the model is not asked)."""
        if self.transcriber is None:
            raise RuntimeError("this session has no transcriber")
        if is_silent(audio):
            self.display.notice(DIDNT_CATCH)
            return None
        heard: Transcript = self.transcriber.transcribe(audio, self.language)
        stt = time.perf_counter() - speech_end
        if not has_words(heard.text):
            self.display.notice(DIDNT_CATCH)
            return None
        return self.reply(heard.text, speech_end, language=heard.language, stt=stt)

    def reply(
        self, text: str, speech_end: float, *, language: str | None = None, stt: float | None = None
    ) -> TurnResult:
        """Answer one user turn: stream the reply to the display and speak it sentence by sentence."""
        self.turns += 1
        result = TurnResult(self.turns, text, language or self.language, "", 0, Timings(stt=stt))
        self.display.user(text)
        self.conversation.add_user(text)
        budget = self.chat.context_size - self.options.max_tokens
        messages = self.conversation.fit(self.chat.count_tokens, budget)
        result.prompt_tokens = self.chat.count_tokens(messages)

        pieces: list[str] = []
        heard: list[str] = []  # sentences handed to the speakers, for the history if cut off
        tokens = self.chat.stream(messages, self.options)

        def shown() -> Iterator[str]:
            for token in tokens:
                if result.timings.llm_first_token is None:
                    result.timings.llm_first_token = time.perf_counter() - speech_end
                pieces.append(token)
                self.display.reply_token(token)
                yield token

        for sink in self.sinks:
            sink.begin_reply(self.turns)
        completed = False
        try:
            for sentence in sentences(shown()):
                audio = self._synthesize(sentence, result)
                if audio is not None:
                    if result.timings.first_audio is None:
                        result.timings.first_audio = time.perf_counter() - speech_end
                    heard.append(sentence)
                    for sink in self.sinks:
                        sink.write(audio)
            completed = True
        except KeyboardInterrupt:
            for sink in self.sinks:
                sink.stop()
            if not self.interruptible:
                raise
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()
            for sink in self.sinks:
                sink.end_reply()
            # Cut off by Ctrl-C or by an error: the history still gets the reply as far as it went,
            # so that it never holds two user turns in a row.
            result.interrupted = not completed
            self._remember(result, pieces, heard)
            self.display.reply_end(result.interrupted)
        result.timings.total = time.perf_counter() - speech_end
        if self.transcript:
            self.transcript.write(result)
        return result

    def _remember(self, result: TurnResult, pieces: list[str], heard: list[str]) -> None:
        result.reply = "".join(pieces).strip()
        if result.interrupted and self.synthesizer is not None and self.sinks:
            # Only what the user heard (at least in part) was said; the rest never happened.
            result.reply = " ".join(heard)
        self.conversation.add_assistant(result.reply + (" …" if result.interrupted else ""))

    def _synthesize(self, sentence: str, result: TurnResult) -> Audio | None:
        """The sentence as audio, or None when nothing will hear it or there is nothing to say."""
        if self.synthesizer is None or not self.sinks:
            return None
        text = speakable(sentence)
        if not has_words(text):
            return None
        return self.synthesizer.synthesize(text, result.language)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self.transcript:
            self.transcript.close()
