"""One turn of the conversation: speech -> text -> reply tokens -> sentences -> speech.

Each stage is a generator pulled by the next, so the first sentence is spoken while the model is
still to write the second. Every timing counts from the end of the user's speech.

A turn is run in one place (Session._run). What happens after it is kept apart: committing it to the
history, then telling the observers (the transcript, then the display). A turn that fails or is cut
off is still recorded, with what was said before it stopped.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, AudioSink, is_silent
from talkgpt4all.conversation import Conversation, MessageTooLong
from talkgpt4all.errors import TalkError, UsageError, one_line
from talkgpt4all.language import answer_note, asked, script_language
from talkgpt4all.llm import ChatModel, GenerationOptions
from talkgpt4all.speculation import Reply, Speculation, Speculator
from talkgpt4all.stt import Transcriber, Transcript
from talkgpt4all.text import has_words, sentences
from talkgpt4all.tts import Synthesizer
from talkgpt4all.voice import Speaker

log = logging.getLogger("talkgpt4all")


@dataclass
class Timings:
    """Seconds from the true end of the user's speech (the last voiced moment) to each stage."""

    endpoint: float | None = None  # hands-free: when the program decided the turn was over
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
    reply: str  # what was said: all of it, or, when cut off, what the user heard (or saw) before that
    prompt_tokens: int
    prompt_evaluated: int | None = None  # prompt tokens the model computed; the rest came from its cache
    timings: Timings = field(default_factory=Timings)
    interrupted: bool = False  # by the user (Enter, Ctrl-C, speech with barge-in) or a signal
    error: str | None = None  # the one-line reason a turn failed
    dropped: int = 0  # old messages the prompt left out to fit the context (forgotten once committed)
    speech_end: float = 0.0  # time.perf_counter() at the true end of the user's speech: timings count from it
    speculated: bool = False  # the turn's speech to text (and prefill) was done in the user's pause
    asked: str = ""  # the user's message as the model got it (with a note on the answer's language)

    @property
    def cut_off(self) -> bool:
        return self.interrupted or self.error is not None

    def to_json(self) -> str:
        record = asdict(self)
        del record["dropped"], record["speech_end"], record["asked"]
        record["timings"] = {k: None if v is None else round(v, 3) for k, v in record["timings"].items()}
        for optional in ("interrupted", "error", "speculated"):
            if not record[optional]:
                del record[optional]
        return json.dumps(record, ensure_ascii=False)


class TurnObserver(Protocol):
    """Told about each turn as it happens: the display, the transcript."""

    def turn_started(self, result: TurnResult) -> None:
        """The user's words are known; the reply is about to be asked for."""

    def reply_token(self, text: str) -> None:
        """The next piece of the reply, as the model writes it."""

    def turn_ended(self, result: TurnResult) -> None:
        """The turn is over: answered, cut off or failed (result.error)."""


class Display(TurnObserver, Protocol):
    """What the user sees. The CLI implements it; the pipeline never prints."""

    def notice(self, text: str) -> None: ...


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
        transcript: TurnObserver | None = None,
        options: GenerationOptions | None = None,
        language: str | None = None,
        interruptible: bool = False,
        stream: bool = True,
        first_clause_words: int | None = FIRST_CLAUSE_WORDS,
        turns_before: int = 0,
        zh_script: str = "simplified",
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
        self.turns = turns_before  # turn numbers go on from a resumed transcript
        self.speculator: Speculator | None = None  # made by the first speculate()
        self.zh_script = zh_script
        self.last_language: str | None = None  # the language of the turn before
        # The transcript hears first: it must keep the turn even if the terminal has gone away.
        self.observers: list[TurnObserver] = [o for o in (transcript, display) if o is not None]

    @property
    def budget(self) -> int:
        """Tokens the prompt may take: the context, less room for the longest reply."""
        return self.chat.context_size - self.options.max_tokens

    @property
    def trim_target(self) -> int | None:
        """How far to trim an overflowing history. A back end that shifts its cache past the dropped
        turns loses nothing by trimming one turn at a time; one that reuses only an unchanged prompt
        beginning re-evaluates everything after the system prompt at each trim, so it trims to half
        the budget and does that rarely."""
        return None if self.chat.shifts_context else self.budget // 2

    def hear(self, audio: np.ndarray, speech_end: float, endpoint: float | None = None) -> TurnResult | None:
        """A spoken turn; None when nothing was said (and the model is not asked). speech_end is when the
        speech really ended; endpoint, how long after it the turn was judged over (hands-free)."""
        if self.transcriber is None:
            raise RuntimeError("this session has no transcriber")
        # From here on, Enter or Ctrl-C cancels this turn: also while the speech is transcribed.
        self.interrupt.clear()
        ahead = self.speculator.claim(audio) if self.speculator else None
        heard: Transcript
        try:
            if is_silent(audio):
                self.display.notice(DIDNT_CATCH)
                return None
            if ahead is not None and ahead.heard is not None and ahead.heard_at is not None:
                heard, stt = ahead.heard, max(0.0, ahead.heard_at - speech_end)
            else:
                try:
                    heard = self.transcriber.transcribe(audio, self.language)
                except KeyboardInterrupt:
                    if not self.interruptible:
                        raise
                    self.interrupt.set()
                    self.display.notice("(cancelled)")
                    return None
                stt = time.perf_counter() - speech_end
            if not has_words(heard.text):
                self.display.notice(DIDNT_CATCH)
                return None
            timings = Timings(endpoint=endpoint, stt=stt)
            return self._turn(heard.text, speech_end, heard.language, timings, ahead)
        finally:
            if self.speculator:
                self.speculator.release()

    def reply(self, text: str, speech_end: float, *, language: str | None = None) -> TurnResult:
        """Answer one typed turn: stream the reply to the display and speak it as it is written. Its
        language is the one given, else --language, else what its script says (Han characters mean
        Chinese), else English."""
        self.interrupt.clear()
        if self.speculator:
            self.speculator.claim(None)
        language = language or self.language or script_language(text) or "en"
        try:
            return self._turn(text, speech_end, language, Timings())
        finally:
            if self.speculator:
                self.speculator.release()

    def speculate(self, audio: np.ndarray) -> None:
        """The user paused (hands-free, or recording push-to-talk), and this may be the whole utterance.
        Its speech to text and the model's prefill start now, on a worker thread; a turn for this very
        audio takes the results."""
        if self.transcriber is None:
            return
        if self.speculator is None:
            transcriber = self.transcriber
            self.speculator = Speculator(lambda a: transcriber.transcribe(a, self.language), self._begin)
        self.speculator.start(audio)

    def cancel_speculation(self) -> None:
        """The user spoke on after the pause."""
        if self.speculator:
            self.speculator.cancel()

    def _asked(self, user: str, language: str | None) -> str:
        """The user's message as the model gets it: with a note on the language to answer in."""
        return asked(user, answer_note(language, self.last_language, self.zh_script))

    def _begin(self, heard: Transcript, cancelled: threading.Event) -> Reply | None:
        """Begin the reply a turn with this transcript would get: its prompt computed into the model's
        cache (where the back end can do that alone), and its stream opened."""
        user = self._asked(heard.text, heard.language or self.language)
        try:
            fitted = self.conversation.fit(user, self.chat.count_tokens, self.budget, self.trim_target)
        except MessageTooLong:
            return None  # the turn itself says so
        prefill = getattr(self.chat, "prefill", None)
        reply = Reply(fitted.messages, int(prefill(fitted.messages, cancelled)) if prefill else 0)
        if not cancelled.is_set():
            reply.stream = self.chat.stream(fitted.messages, self.options)
        return reply

    def stop(self) -> None:
        """Interrupt the turn in progress (from another thread: a key press, or speech with --barge-in)."""
        self.interrupt.set()
        speaker = self._speaker
        if speaker:
            speaker.stop()

    # ------------------------------------------------------------------ a turn, then what follows it

    def _turn(
        self,
        text: str,
        speech_end: float,
        language: str | None,
        timings: Timings,
        ahead: Speculation | None = None,
    ) -> TurnResult:
        self.turns += 1
        result = TurnResult(
            self.turns,
            text,
            language or self.language,
            "",
            0,
            timings=timings,
            speech_end=speech_end,
            speculated=ahead is not None,
        )
        escaping: BaseException | None = None
        try:
            self._run(result, speech_end, ahead)
        except TalkError as exc:
            result.error = one_line(str(exc))
        except KeyboardInterrupt as exc:
            result.interrupted = True
            if not self.interruptible:
                escaping = exc
        except BaseException as exc:  # SystemExit from a signal handler, or a bug: record, then go on up
            result.interrupted = True
            if not isinstance(exc, SystemExit):
                result.error = one_line(f"unexpected {type(exc).__name__}: {exc}")
            escaping = exc
        self.commit(result)
        self.last_language = result.language
        for observer in self.observers:
            observer.turn_ended(result)
        # A turn leaves cyclic garbage behind (objects that lived through it, ctypes array types that
        # llama-cpp-python makes as it tokenizes), which Python's generational collector reaches only
        # rarely: over 200 turns, memory crept up 6% without this and stayed flat with it. It costs
        # about 20 ms, after the turn is recorded, before the next one starts.
        gc.collect()
        if escaping is not None:
            raise escaping
        return result

    def commit(self, result: TurnResult) -> None:
        """Keep the turn in the history, if anything was said. A reply cut off is kept as far as the
        user heard it, marked as cut off; the old turns the prompt left out are forgotten."""
        if result.reply:
            conversation = self.conversation
            user = result.asked or result.user
            conversation.commit(user, result.reply, cut_off=result.cut_off, dropped=result.dropped)

    def _run(self, result: TurnResult, speech_end: float, ahead: Speculation | None = None) -> None:
        for observer in self.observers:
            observer.turn_started(result)
        if self.interrupt.is_set():  # cancelled before the model was asked (Enter during STT)
            result.interrupted = True
            return
        result.asked = self._asked(result.user, result.language)
        fitted = self.conversation.fit(result.asked, self.chat.count_tokens, self.budget, self.trim_target)
        result.prompt_tokens, result.dropped = fitted.tokens, fitted.dropped

        def since_speech() -> float:
            return time.perf_counter() - speech_end

        pieces: list[str] = []
        begun = ahead.reply if ahead is not None else None
        if begun is not None and begun.messages != fitted.messages:
            begun.close()  # begun for another prompt (cannot happen while the turn holds the engines)
            begun = None
        source: Iterator[str] | None
        if begun is not None:
            # The reply was begun in the pause: its first tokens are written, and its stream goes on.
            source = begun.stream
            tokens: Iterator[str] = itertools.chain(begun.tokens, source or ())
        else:
            source = tokens = self.chat.stream(fitted.messages, self.options)

        def shown() -> Iterator[str]:
            for token in tokens:
                if self.interrupt.is_set():
                    return
                if result.timings.llm_first_token is None:
                    result.timings.llm_first_token = since_speech()
                pieces.append(token)
                for observer in self.observers:
                    observer.reply_token(token)
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
            if not self.interrupt.is_set():
                for observer in self.observers:
                    written = getattr(observer, "reply_written", None)  # the display's status line
                    if written is not None:
                        written(speaker is not None)
            if speaker:
                speaker.finish()
            completed = not self.interrupt.is_set()
        finally:
            close = getattr(source, "close", None)
            if close:
                close()
            if speaker:
                speaker.close()
            self._speaker = None
            result.prompt_evaluated = self.chat.last_evaluated
            if result.prompt_evaluated is not None and begun is not None:
                result.prompt_evaluated += begun.prefilled  # computed in the pause, for this prompt
            result.reply = "".join(pieces).strip()
            if not completed:
                # Only what the user heard (at least in part) was said; the rest never happened.
                if speaker is not None:
                    result.reply = " ".join(speaker.played)
                # The speaker stops itself when it fails; only a stop without a failure is the user's.
                result.interrupted = self.interrupt.is_set() and (speaker is None or speaker.error is None)
        if speaker and speaker.error:
            raise speaker.error
        result.timings.total = since_speech()

    # ------------------------------------------------------------------ before and after the session

    def warm_up(self) -> None:
        """One tiny inference per engine, so the first turn is as fast as the others.

        The chat model also keeps the prompt's beginning evaluated, which the first turn reuses: the
        system prompt, and the history of a resumed conversation. A system prompt that leaves no room
        in the context is a usage error, found here rather than at the first turn.
        """
        if self.transcriber is not None:
            self.transcriber.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), self.language or "en")
        try:
            fitted = self.conversation.fit("Hi", self.chat.count_tokens, self.budget, self.trim_target)
        except MessageTooLong:
            system = self.chat.count_tokens(Conversation(self.conversation.system_prompt).messages)
            raise UsageError(
                f"the system prompt takes {system} tokens, but --context {self.chat.context_size} with "
                f"--max-tokens {self.options.max_tokens} leaves {self.budget} for the whole prompt: "
                "shorten --system-prompt, raise --context or lower --max-tokens"
            ) from None
        for _ in self.chat.stream(fitted.messages, GenerationOptions(max_tokens=1, temperature=0.0)):
            pass
        if self.synthesizer is not None and self.sinks:
            audio = self.synthesizer.synthesize("Hi", self.language)
            for sink in self.sinks:
                sink.prepare(audio.sample_rate)

    def close(self) -> None:
        if self.speculator:
            self.speculator.close()
        self.chat.close()
        for sink in self.sinks:
            sink.close()
        close_transcript = getattr(self.transcript, "close", None)
        if close_transcript:
            close_transcript()
