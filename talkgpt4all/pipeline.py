"""One turn of the conversation: speech -> text -> reply tokens -> sentences -> speech.

Each stage is a generator pulled by the next, so the first sentence is spoken while the model is
still to write the second. Every timing counts from the end of the user's speech.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, AudioSink, is_silent
from talkgpt4all.conversation import Conversation
from talkgpt4all.errors import TalkError
from talkgpt4all.llm import ChatModel, GenerationOptions
from talkgpt4all.stt import Transcriber, Transcript
from talkgpt4all.text import has_words, sentences
from talkgpt4all.tts import Synthesizer
from talkgpt4all.voice import Speaker

log = logging.getLogger("talkgpt4all")


class Display(Protocol):
    """What the user sees. The CLI implements it; the pipeline never prints."""

    def user(self, text: str) -> None: ...

    def reply_token(self, text: str) -> None: ...

    def reply_end(self, interrupted: bool) -> None: ...

    def notice(self, text: str) -> None: ...

    def timings(self, result: TurnResult) -> None:
        """Called after each completed reply (the CLI shows them with --timings)."""


@dataclass
class Timings:
    stt: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
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


# The first piece of a reply may end at a comma once it has this many words: speech starts sooner,
# and four words are enough to sound like a phrase rather than a stutter.
FIRST_CLAUSE_WORDS = 4

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
        stream: bool = True,
        first_clause_words: int | None = FIRST_CLAUSE_WORDS,
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
        self.stream = stream  # False: the sequential --no-stream baseline
        self.first_clause_words = first_clause_words if stream else None
        self.interrupt = threading.Event()
        self._speaker: Speaker | None = None
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
        """Answer one user turn: stream the reply to the display and speak it as it is written."""
        self.interrupt.clear()
        self.turns += 1
        result = TurnResult(self.turns, text, language or self.language, "", 0, Timings(stt=stt))
        self.display.user(text)
        self.conversation.add_user(text)
        budget = self.chat.context_size - self.options.max_tokens
        try:
            messages = self.conversation.fit(self.chat.count_tokens, budget)
        except TalkError:
            self.conversation.turns.pop()  # the turn that cannot be sent is not part of the history
            raise
        result.prompt_tokens = self.chat.count_tokens(messages)

        def since_speech() -> float:
            return time.perf_counter() - speech_end

        pieces: list[str] = []
        tokens = self.chat.stream(messages, self.options)

        def shown() -> Iterator[str]:
            for token in tokens:
                if self.interrupt.is_set():
                    return
                if result.timings.llm_first_token is None:
                    result.timings.llm_first_token = since_speech()
                pieces.append(token)
                self.display.reply_token(token)
                yield token

        def first_audio() -> None:
            result.timings.first_audio = since_speech()

        speaker = None
        if self.synthesizer is not None and self.sinks:
            speaker = Speaker(
                self.synthesizer,
                self.sinks,
                turn=self.turns,
                language=result.language,
                interrupt=self.interrupt,
                on_first_audio=first_audio,
            )
        self._speaker = speaker
        completed = False
        try:
            if self.stream:
                for sentence in sentences(shown(), self.first_clause_words):
                    if result.timings.first_sentence is None:
                        result.timings.first_sentence = since_speech()
                    if speaker:
                        speaker.say(sentence)
            else:
                # The sequential baseline: the whole reply, then all of its speech, then playback.
                whole = "".join(shown()).strip()
                result.timings.first_sentence = since_speech()
                if speaker and whole:
                    speaker.say(whole)
            if speaker:
                speaker.finish()
            completed = not self.interrupt.is_set()
        except KeyboardInterrupt:
            self.interrupt.set()
            if not self.interruptible:
                raise
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()
            if speaker:
                speaker.close()
            self._speaker = None
            # Cut off by Ctrl-C, Enter or an error: the history still gets the reply as far as it was
            # heard, so that it never holds two user turns in a row.
            result.interrupted = not completed
            self._remember(result, pieces, speaker.played if speaker else None)
            self.display.reply_end(result.interrupted)
        if speaker and speaker.error:
            raise speaker.error
        result.timings.total = since_speech()
        self.display.timings(result)
        if self.transcript:
            self.transcript.write(result)
        return result

    def stop(self) -> None:
        """Interrupt the reply in progress (from another thread: a key press, or speech with --barge-in)."""
        self.interrupt.set()
        speaker = self._speaker
        if speaker:
            speaker.stop()

    def _remember(self, result: TurnResult, pieces: list[str], played: list[str] | None) -> None:
        result.reply = "".join(pieces).strip()
        if result.interrupted and played is not None:
            # Only what the user heard (at least in part) was said; the rest never happened.
            result.reply = " ".join(played)
        self.conversation.add_assistant(result.reply + (" …" if result.interrupted else ""))

    def warm_up(self) -> None:
        """One tiny inference per engine, so the first turn is as fast as the others.

        The chat model also keeps the system prompt's tokens evaluated, which later prompts reuse.
        """
        if self.transcriber is not None:
            self.transcriber.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), self.language or "en")
        warm = Conversation(self.conversation.system_prompt)
        warm.add_user("Hi")
        for _ in self.chat.stream(warm.messages, GenerationOptions(max_tokens=1, temperature=0.0)):
            pass
        if self.synthesizer is not None and self.sinks:
            audio = self.synthesizer.synthesize("Hi", self.language)
            for sink in self.sinks:
                sink.prepare(audio.sample_rate)

    def close(self) -> None:
        close_chat = getattr(self.chat, "close", None)
        if close_chat:
            close_chat()
        for sink in self.sinks:
            sink.close()
        if self.transcript:
            self.transcript.close()
