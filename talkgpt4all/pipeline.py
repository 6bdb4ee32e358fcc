"""One turn of the conversation: speech -> text -> reply tokens -> sentences -> speech.

Each stage is a generator pulled by the next, so the first sentence is spoken while the model is still to
write the second. Every timing counts from the true end of the user's speech.

The life of a turn
------------------
A turn goes through these states. Each is owned by one thread, and only that thread moves the turn on,
except that any thread may cut it off (Turn.interrupt()).

``listening``
    The user speaks; no Turn exists yet. The listener thread (hands-free) or the recording (push-to-talk)
    has the audio. In the user's pauses the speculation worker may transcribe it and begin the reply,
    holding the engines while it does (speculation.py).
``heard``
    The utterance is over (the endpoint, Enter, a typed line). The main thread makes the Turn, claims the
    engines (the worker stops at its next step, or finishes the work for this very utterance), and
    transcribes it, or takes the transcript made in the pause.
``thinking``
    The prompt is fitted to the context, and the model writes. The main thread pulls the reply's tokens
    from its source (a stream begun in the pause, or a fresh one), shows them, and hands each sentence to
    the voice, whose synthesis and playback threads speak it meanwhile.
``speaking``
    The reply is written; the voice plays on. The main thread waits for its last sound.
``taken back``
    Hands-free, the user spoke on before the reply made a sound (the pause was not the end after all):
    the listener thread takes the turn back. It is cut off as below, and never happened: nothing of it
    is kept, and its audio begins the next utterance, so that the two parts are one turn. Once the first
    sound has played (Turn.first_sound(), on the playback thread), a turn can no longer be taken back.
``done``, ``cut off``, ``failed``
    The final states. Heard to the end; or cut off: Enter or a typed line (the keyboard thread), speech
    over the reply (the listener thread), Ctrl-C, SIGTERM or SIGHUP (the signal watch's thread, the
    moment it arrives, and then the main thread, as an exception); or failed: an engine, a server or a
    device, one line, and the conversation goes on. Every way to cut a turn off takes one path:
    Turn.interrupt() sets its `cut` event and stops its voice, whose sinks drop what they hold. An
    exception leaving the voice stops it the same way.

Then the main thread settles the turn: the reply is what the user heard (all of it, or as far as it
went), the turn is marked final, committed to the history, and told to the observers (the stopwatch,
the transcript, the display). By then its voice's threads are joined and its reply's stream is closed,
and the engines are released: nothing of the turn outlives it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, AudioSink, is_silent
from talkgpt4all.conversation import Conversation, Fitted, Message, MessageTooLong, tool_messages
from talkgpt4all.errors import TalkError, UsageError, one_line
from talkgpt4all.language import answer_note, asked, script_language
from talkgpt4all.llm import CallsTools, ChatModel, GenerationOptions, Prefills
from talkgpt4all.observers import Observers, Stopwatch, TurnObserver
from talkgpt4all.settings import Config
from talkgpt4all.speculation import EngineLock, Held, Reply, Speculation, Speculator
from talkgpt4all.stt import Transcriber, Transcript
from talkgpt4all.text import Cleaner, clean, first_piece, has_words, sentences, speakable
from talkgpt4all.tools import CallFinder, Toolbox, ToolCall, confirm_question, yes_or_no
from talkgpt4all.tools.builtin import Due
from talkgpt4all.tts import Synthesizer
from talkgpt4all.voice import Voice

if TYPE_CHECKING:
    from talkgpt4all.wake import Wake

log = logging.getLogger("talkgpt4all")

# The first piece of a reply may end at a comma once it has this many words: speech starts sooner,
# and four words are enough to sound like a phrase rather than a stutter.
FIRST_CLAUSE_WORDS = 4
DIDNT_CATCH = "Sorry, I didn't catch that. Please try again."
ENGINES_WAIT = 60.0  # seconds the end of a session waits for work inside the model before it frees it
# A spoken turn's first sound waits this long at most while the microphone hears what may be the user
# going on (speech not yet long enough to be sure of): if it is, the turn is taken back without a sound.
WAIT_FOR_SPEECH = 0.25
TOOL_ROUNDS = 3  # times a reply may call tools and go on with their results, in one turn
SLOW_CALL = 1.0  # seconds a tool call may take before the voice says "One moment"
ONE_MOMENT = {"en": "One moment.", "zh": "请稍等。"}
NOT_DONE = {"en": "All right, I won't.", "zh": "好的，不做了。"}


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
    reply: str = ""  # what was said: all of it, or, when cut off, what the user heard (or saw) before that
    prompt_tokens: int = 0
    prompt_evaluated: int | None = None  # prompt tokens the model computed; the rest came from its cache
    timings: Timings = field(default_factory=Timings)
    interrupted: bool = False  # by the user (Enter, Ctrl-C, speech with barge-in) or a signal
    error: str | None = None  # the one-line reason a turn failed
    dropped: int = 0  # old messages the prompt left out to fit the context (forgotten once committed)
    speech_end: float = 0.0  # time.perf_counter() at the true end of the user's speech: timings count from it
    speculated: bool = False  # the turn's speech to text (and prefill) was done in the user's pause
    asked: str = ""  # the user's message as the model got it (with a note on the answer's language)
    # The tools the reply called, in order: {"name", "arguments", "result", "error"?, "id"?}
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def phrase_language(self) -> str:
        """The language of the program's own short phrases in this turn ("One moment", "Shall I …?"):
        Chinese for a Chinese turn, else English."""
        return "zh" if (self.language or "").startswith("zh") else "en"

    @property
    def cut_off(self) -> bool:
        return self.interrupted or self.error is not None

    def to_json(self) -> str:
        record = asdict(self)
        del record["dropped"], record["speech_end"], record["asked"]
        record["timings"] = {k: None if v is None else round(v, 3) for k, v in record["timings"].items()}
        for optional in ("interrupted", "error", "speculated", "tools"):
            if not record[optional]:
                del record[optional]
        return json.dumps(record, ensure_ascii=False)


class Display(TurnObserver):
    """What the user sees. The CLI implements it; the pipeline never prints."""

    def notice(self, text: str) -> None:
        raise NotImplementedError


class TurnState(Enum):
    HEARD = "heard"
    THINKING = "thinking"
    SPEAKING = "speaking"
    DONE = "done"
    CUT_OFF = "cut off"
    FAILED = "failed"
    TAKEN_BACK = "taken back"


FINAL = frozenset({TurnState.DONE, TurnState.CUT_OFF, TurnState.FAILED, TurnState.TAKEN_BACK})


class Turn:
    """One turn's handle: its state, and the one way to cut it off (see the module's docstring)."""

    def __init__(self, spoken: bool = False) -> None:
        self.state = TurnState.HEARD
        self.spoken = spoken  # heard, not typed: the user may go on with it
        self.cut = threading.Event()  # cut off: by the user, or a signal
        self.taken_back = False  # the user spoke on before it sounded: it never happened
        self.sounded = False  # its reply's first sound has played
        self._voice: Voice | None = None
        self._lock = threading.Lock()

    def move(self, state: TurnState) -> None:
        """The main thread moves the turn on."""
        with self._lock:
            self.state = state

    def speaking_with(self, voice: Voice | None) -> None:
        """The voice the turn speaks with, from now on (a turn already cut off stops it at once)."""
        with self._lock:
            self._voice = voice
            cut = self.cut.is_set()
        if cut and voice is not None:
            voice.stop()

    def first_sound(self) -> bool:
        """The playback thread is about to play the reply's first sound: whether it may. A turn cut off
        (or taken back) never sounds; one that has sounded can no longer be taken back."""
        with self._lock:
            if self.cut.is_set():
                return False
            self.sounded = True
            return True

    def take_back(self) -> bool:
        """The user went on speaking before the reply made a sound (from the listener's thread): the turn
        is cut off, and will be forgotten. False when it has sounded, is over, or was typed."""
        with self._lock:
            if self.state in FINAL or self.sounded or not self.spoken:
                return False
            self.cut.set()
            self.taken_back = True
            voice = self._voice
        if voice is not None:
            voice.stop()
        log.info("the user went on: the turn is taken back (at %.3f)", time.perf_counter())
        return True

    def interrupt(self) -> bool:
        """Cut the turn off now, from any thread: it stops at its next step, and its voice at once.
        False when the turn was already over (then nothing is done)."""
        with self._lock:
            if self.state in FINAL:
                return False
            self.cut.set()
            voice = self._voice
        if voice is not None:
            voice.stop()
        # With -v: when (time.perf_counter(), the system's monotonic clock), for the tests and benchmarks
        log.info("the turn is cut off (at %.3f)", time.perf_counter())
        return True


@dataclass
class Engines:
    """The loaded models a session runs its turns on, and where its voice is heard."""

    chat: ChatModel
    transcriber: Transcriber | None = None
    synthesizer: Synthesizer | None = None
    sinks: list[AudioSink] = field(default_factory=list)


class Session:
    """A conversation on loaded engines: its turns, one at a time.

    The engines' lock is made here, once: every use of a model (a turn, the speculation worker, the
    warm-up, the end of the session) goes through it.
    """

    def __init__(
        self,
        engines: Engines,
        conversation: Conversation,
        display: Display,
        config: Config | None = None,
        *,
        transcript: TurnObserver | None = None,
        turns_before: int = 0,
    ) -> None:
        self.engines, self.conversation, self.display = engines, conversation, display
        self.config = config or Config()
        self.transcript = transcript
        self.interruptible = self.config.interactive  # Ctrl-C ends only the reply
        self.turns = turns_before  # turn numbers go on from a resumed transcript
        self.last_language: str | None = None  # the language of the turn before
        self._lock = EngineLock()  # the engines'
        self.speculator = Speculator(
            self._transcribe_ahead,
            self._begin,
            self._lock,
            hold=self._hold_first if self.config.turns.stream else None,
        )
        self._current: Turn | None = None
        # Hands-free, the listener's: whether the microphone hears what may be the start of speech.
        self.speech_starting: Callable[[], bool] = lambda: False
        # With a wake word or phrase: what takes it out of transcripts, and says what was addressed.
        self.wake: Wake | None = None
        # The tools the model may call (--tools, MCP servers): none unless the user turned some on.
        self.toolbox: Toolbox | None = None
        # Where something that is not the user's (a timer that is due) is sent to be said: the loop
        # under way puts it in its inbox, to be said between turns (see announce()).
        self.post: Callable[[Due], None] | None = None
        # Calls that change something, asked about ("Shall I …? Say yes or no"): the next turn's yes runs
        # them, its no does not; any other turn forgets them.
        self.pending: list[ToolCall] | None = None
        # The stopwatch first, then the transcript: it must keep the turn even if the terminal has gone.
        self.observers: list[TurnObserver] = [Stopwatch(), *([transcript] if transcript else []), display]

    @property
    def options(self) -> GenerationOptions:
        return self.config.llm.generation

    @property
    def language(self) -> str | None:
        return self.config.stt.language

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        """The tools the model is given, in the OpenAI shape: None without any, or with a model that
        cannot call them (said once, at startup)."""
        chat = self.engines.chat
        if not self.toolbox or not isinstance(chat, CallsTools) or chat.tool_support() is not None:
            return None
        return self.toolbox.schemas()

    @property
    def budget(self) -> int:
        """Tokens the prompt may take: the context, less room for the longest reply."""
        return self.engines.chat.context_size - self.options.max_tokens

    @property
    def trim_target(self) -> int | None:
        """How far to trim an overflowing history. A back end that shifts its cache past the dropped
        turns loses nothing by trimming one turn at a time; one that reuses only an unchanged prompt
        beginning re-evaluates everything after the system prompt at each trim, so it trims to half
        the budget and does that rarely."""
        return None if self.engines.chat.shifts_context else self.budget // 2

    # ------------------------------------------------------------------ the loops' way in

    def hear(
        self, audio: np.ndarray, speech_end: float, endpoint: float | None = None, *, addressed: bool = True
    ) -> TurnResult | None:
        """A spoken turn; None when nothing was said (and the model is not asked). speech_end is when the
        speech really ended; endpoint, how long after it the turn was judged over (hands-free).

        With a wake word, the turn is its words without it. Not addressed (the listener could not tell,
        and the words do not say the wake phrase), or the wake word alone, it is None, and leaves no
        trace at all."""
        transcriber = self.engines.transcriber
        if transcriber is None:
            raise RuntimeError("this session has no transcriber")
        turn = self._open(spoken=True)
        try:
            ahead = self.speculator.claim(audio)
            if is_silent(audio):
                if addressed:
                    self.display.notice(DIDNT_CATCH)
                return None
            if ahead is not None and ahead.heard is not None and ahead.heard_at is not None:
                heard, stt = ahead.heard, max(0.0, ahead.heard_at - speech_end)
            else:
                try:
                    heard = transcriber.transcribe(audio, self.language)
                except KeyboardInterrupt:
                    if not self.interruptible:
                        raise
                    self.display.notice("(cancelled)")
                    return None
                stt = time.perf_counter() - speech_end
            text: str | None = heard.text
            if self.wake is not None and has_words(heard.text):
                text = self.wake.accept(heard.text, addressed)
                if text is None or not has_words(text):
                    log.debug(
                        "not a turn (%s): %r",
                        "not addressed" if text is None else "the wake word alone",
                        heard.text,
                    )
                    return None
            if text is None or not has_words(text):
                if addressed:
                    self.display.notice(DIDNT_CATCH)
                return None
            result = self._turn(turn, text, speech_end, heard.language, Timings(endpoint, stt), ahead)
            return None if turn.taken_back else result
        finally:
            self._close(turn)

    def reply(self, text: str, speech_end: float, *, language: str | None = None) -> TurnResult:
        """Answer one typed turn: stream the reply to the display and speak it as it is written. Its
        language is the one given, else --language, else what its script says (Han characters mean
        Chinese), else English."""
        turn = self._open()
        language = language or self.language or script_language(text) or "en"
        try:
            self.speculator.claim(None)
            return self._turn(turn, text, speech_end, language, Timings())
        finally:
            self._close(turn)

    def deliver(self, event: Due) -> None:
        """From any thread: an event for the loop (a timer that is due). Without a loop to take it (the
        session is ending), it is only logged."""
        post = self.post
        if post is None:
            log.info("no loop to take %r", event)
            return
        post(event)

    def announce(self, text: str) -> None:
        """Say what is not a reply (a timer that is due), between turns: shown, and spoken in the
        reply's voice; Enter, a signal or speech over it stops it as it stops a reply. It is not a turn:
        not in the history, not in the transcript."""
        turn = self._open()
        try:
            self.speculator.claim(None)  # the engines: the voice is the session's
            language = script_language(text) or self.language or "en"
            self.display.notice(f"⏰ {text}")
            voice = self._voice(turn, TurnResult(self.turns, text, language), Observers([]))
            turn.speaking_with(voice)
            if voice is not None:
                with voice:
                    voice.say(text)
                    voice.finish()
        finally:
            self._close(turn)

    def speculate(self, audio: np.ndarray) -> None:
        """The user paused (hands-free, or recording push-to-talk), and this may be the whole utterance.
        Its speech to text and the model's prefill start now, on the speculation worker; a turn for this
        very audio takes the results."""
        if self.engines.transcriber is not None:
            self.speculator.start(audio)

    def heard_so_far(self) -> str | None:
        """The words of the pause under way, once transcribed ahead (None until then): the listener
        weighs them in the end of the turn (endpoint.py)."""
        heard = self.speculator.heard()
        return None if heard is None else heard.text

    def cancel_speculation(self) -> None:
        """The user spoke on after the pause."""
        self.speculator.cancel()

    def take_back(self) -> bool:
        """The user spoke on (hands-free): take back the spoken turn in progress if its reply has not
        made a sound yet. True: it is forgotten, and what was heard is to begin the next utterance."""
        turn = self._current
        return turn.take_back() if turn is not None else False

    def reply_sounded(self) -> bool:
        """Whether the turn in progress has made a sound (the speakers may be heard from now on)."""
        turn = self._current
        return turn is not None and turn.sounded

    def stop(self) -> bool:
        """Cut off the turn in progress (from another thread: a key press, or speech with barge-in).
        False when there is none: a key pressed as a turn ends is then the user's next."""
        turn = self._current
        return turn.interrupt() if turn is not None else False

    # ------------------------------------------------------------------ a turn

    def _open(self, spoken: bool = False) -> Turn:
        turn = Turn(spoken)
        self._current = turn
        return turn

    def _close(self, turn: Turn) -> None:
        """The turn is over: final (even a turn that never reached the model), the engines released."""
        if turn.state not in FINAL:
            turn.move(TurnState.CUT_OFF if turn.cut.is_set() else TurnState.DONE)
        self._current = None
        self.speculator.release()

    def _asked(self, user: str, language: str | None) -> str:
        """The user's message as the model gets it: with a note on the language to answer in."""
        return asked(user, answer_note(language, self.last_language, self.config.stt.zh_script))

    def _fit(self, user: str) -> Fitted:
        return self.conversation.fit(user, self.engines.chat.count_tokens, self.budget, self.trim_target)

    def _turn(
        self,
        turn: Turn,
        text: str,
        speech_end: float,
        language: str | None,
        timings: Timings,
        ahead: Speculation | None = None,
    ) -> TurnResult:
        self.turns += 1
        result = TurnResult(
            self.turns,
            clean(text),
            language or self.language,
            timings=timings,
            speech_end=speech_end,
            speculated=ahead is not None,
        )
        observers = Observers(self.observers)
        escaping: BaseException | None = None
        try:
            self._run(turn, result, observers, ahead)
        except TalkError as exc:
            result.error = one_line(str(exc))
        except KeyboardInterrupt as exc:
            turn.interrupt()
            if not self.interruptible:
                escaping = exc
        except BaseException as exc:  # SystemExit from a signal handler, or a bug: record, then go on up
            turn.interrupt()
            if not isinstance(exc, SystemExit):
                result.error = one_line(f"unexpected {type(exc).__name__}: {exc}")
            escaping = exc
        if turn.taken_back and escaping is None:
            # It never happened: not kept, not written down, and its number is the next turn's.
            turn.move(TurnState.TAKEN_BACK)
            self.turns -= 1
            observers.turn_taken_back(result)
            return result
        result.interrupted = turn.cut.is_set()
        turn.move(
            TurnState.FAILED if result.error else TurnState.CUT_OFF if result.interrupted else TurnState.DONE
        )
        self.commit(result)
        self.last_language = result.language
        observers.turn_ended(result)
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
            user = result.asked or result.user
            self.conversation.commit(
                user, result.reply, cut_off=result.cut_off, dropped=result.dropped, tools=result.tools
            )

    def _run(self, turn: Turn, result: TurnResult, observers: Observers, ahead: Speculation | None) -> None:
        observers.turn_started(result)
        if turn.cut.is_set():  # cut off before the model was asked (Enter during speech to text)
            return
        result.asked = self._asked(result.user, result.language)
        fitted = self._fit(result.asked)
        result.prompt_tokens, result.dropped = fitted.tokens, fitted.dropped
        turn.move(TurnState.THINKING)
        pending, self.pending = self.pending, None
        answer = yes_or_no(result.user) if pending else None
        confirmed: list[ToolCall] = []
        if pending and answer is not None:
            # The answer to "Shall I …?": yes makes the calls (the model goes on from their results), no
            # is said at once. What the pause began for these words is not the answer.
            if ahead is not None and ahead.reply is not None:
                ahead.reply.close()
            confirmed = pending if answer else []
            lines = [f"<tool_call>{json.dumps(c.to_json(), ensure_ascii=False)}</tool_call>" for c in pending]
            said = lines if answer else [NOT_DONE[result.phrase_language]]
            source = Reply(fitted.messages, stream=(line for line in said))
        else:
            source = self._source(fitted, ahead)
        held = ahead.held if ahead is not None and source is ahead.reply else None
        if held is not None and held.language != result.language:
            held = None
        voice = self._voice(turn, result, observers, held)
        turn.speaking_with(voice)
        written: list[str] = []
        heard_all = False
        first = source
        try:
            with voice or contextlib.nullcontext():
                self._answer(turn, voice, source, fitted.messages, written, result, observers, confirmed)
                if not turn.cut.is_set():
                    turn.move(TurnState.SPEAKING)
                    observers.reply_written(voice is not None)
                if voice is not None:
                    voice.finish()
                heard_all = not turn.cut.is_set() and (voice is None or not voice.stopped)
        finally:
            result.prompt_evaluated = self.engines.chat.last_evaluated
            if result.prompt_evaluated is not None:
                result.prompt_evaluated += first.prefilled  # computed in the pause, for this prompt
            # Only what the user heard (at least in part) was said; the rest never happened.
            result.reply = "".join(written).strip() if heard_all or voice is None else " ".join(voice.played)
        if voice is not None and voice.error is not None:
            raise voice.error

    def _answer(
        self,
        turn: Turn,
        voice: Voice | None,
        source: Reply,
        messages: list[Message],
        written: list[str],
        result: TurnResult,
        observers: Observers,
        confirmed: list[ToolCall] | None = None,
    ) -> None:
        """Write the reply from its source. With tools, the calls it makes are run, their results given to
        the model, and the reply goes on from them (up to TOOL_ROUNDS times), in the same voice. A call
        to a tool that changes something (destructive) is not made: the user is asked, and the reply
        ends with the question; the next turn's yes makes it (`confirmed`)."""
        tools, confirmed = self.tools, confirmed or []
        for round_ in range(TOOL_ROUNDS + 1):
            finder = CallFinder() if tools or confirmed else None
            with contextlib.closing(source):
                self._write(turn, voice, source, written, observers, finder)
            if tools and self.tools is None:  # the server refused them: said once, and the turn goes on
                chat = self.engines.chat
                why = chat.tool_support() if isinstance(chat, CallsTools) else None
                self.display.notice(f"Tools are off: {why}. Going on without them.")
                tools = None
            if finder is None or not finder.calls or turn.cut.is_set():
                return
            asking = [call for call in finder.calls if self._asks_first(call) and call not in confirmed]
            if asking:
                language = result.phrase_language
                question = confirm_question(asking, language)
                log.info("asking before: %s", ", ".join(call.name for call in asking))
                self._write(turn, voice, Reply(messages, stream=(q for q in [question])), written, observers)
                self.pending = None if turn.cut.is_set() else list(finder.calls)
                return
            if round_ == TOOL_ROUNDS:
                log.info("the reply called tools %d times: the last calls are not made", TOOL_ROUNDS + 1)
                return
            messages = messages + tool_messages(
                self._call_tools(turn, voice, finder.calls, result, observers)
            )
            if turn.cut.is_set():
                return
            source = Reply(messages, stream=self._stream(messages, tools))

    def _call_tools(
        self, turn: Turn, voice: Voice | None, calls: list[ToolCall], result: TurnResult, observers: Observers
    ) -> list[dict[str, Any]]:
        """Run the calls, in order, until the turn is cut off (which cancels the one running); each
        becomes a record in the turn's result. A failure is one line, and the model hears of it."""
        assert self.toolbox is not None
        language = result.phrase_language
        made: list[dict[str, Any]] = []
        for call in calls:
            if turn.cut.is_set():
                break
            observers.tool_started(call.name)
            log.info("tool call: %s %s", call.name, json.dumps(call.arguments, ensure_ascii=False))
            outcome = self.toolbox.call(
                call,
                turn.cut,
                slow=SLOW_CALL,
                on_slow=(lambda: voice.say(ONE_MOMENT[language])) if voice is not None else lambda: None,
            )
            if outcome.error and not turn.cut.is_set():
                self.display.notice(one_line(f"{call.name}: {outcome.content.removeprefix('error: ')}"))
            record: dict[str, Any] = {
                "name": call.name,
                "arguments": call.arguments,
                "result": outcome.content,
            }
            if outcome.error:
                record["error"] = True
            if call.id:
                record["id"] = call.id
            made.append(record)
            result.tools.append(record)
        return made

    def _asks_first(self, call: ToolCall) -> bool:
        tool = self.toolbox.tools.get(call.name) if self.toolbox is not None else None
        return tool is not None and tool.destructive

    def _stream(
        self, messages: list[Message], tools: list[dict[str, Any]] | None
    ) -> Generator[str, None, None]:
        """The model's reply to these messages: with the tools, when it is given any."""
        chat = self.engines.chat
        if tools and isinstance(chat, CallsTools):
            return chat.stream(messages, self.options, tools=tools)
        return chat.stream(messages, self.options)

    def _source(self, fitted: Fitted, ahead: Speculation | None) -> Reply:
        """The reply's tokens: the stream begun in the pause for this very prompt, or a fresh one."""
        begun = ahead.reply if ahead is not None else None
        if begun is not None and begun.messages == fitted.messages:
            return begun
        if begun is not None:
            begun.close()  # begun for another prompt (cannot happen while the turn holds the engines)
        return Reply(fitted.messages, stream=self._stream(fitted.messages, self.tools))

    def _voice(
        self, turn: Turn, result: TurnResult, observers: Observers, held: Held | None = None
    ) -> Voice | None:
        synthesizer, sinks = self.engines.synthesizer, self.engines.sinks
        if synthesizer is None or not sinks:
            return None
        return Voice(
            synthesizer,
            sinks,
            turn=result.turn,
            language=result.language,
            may_sound=lambda: self._may_sound(turn),
            on_first_audio=observers.audio_started,
            held=held,
        )

    def _may_sound(self, turn: Turn) -> bool:
        """From the playback thread, before a reply's first sound: whether it may play. A spoken turn's
        waits a moment (WAIT_FOR_SPEECH at most) while the user may be going on, so that speech which
        then proves to be theirs takes the turn back before anything is heard."""
        if turn.spoken:
            deadline = time.monotonic() + WAIT_FOR_SPEECH
            while self.speech_starting() and not turn.cut.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
        return turn.first_sound()

    def _write(
        self,
        turn: Turn,
        voice: Voice | None,
        source: Reply,
        written: list[str],
        observers: Observers,
        finder: CallFinder | None = None,
    ) -> None:
        """Pull the reply: each token shown (made safe for the terminal first), each sentence to the
        voice; until it is written, or the turn is cut off, or the voice stopped itself. With a finder,
        the tool calls in it are taken out first: never shown, never said."""
        cleaner = Cleaner()

        def tokens() -> Iterator[str]:
            for raw in source:
                if turn.cut.is_set() or (voice is not None and voice.stopped):
                    return
                token = cleaner.feed(finder.feed(raw) if finder is not None else raw)
                if token:
                    written.append(token)
                    observers.reply_token(token)
                    yield token
            if finder is not None and (token := cleaner.feed(finder.flush())):
                written.append(token)
                observers.reply_token(token)
                yield token
            if tail := cleaner.flush():
                written.append(tail)
                observers.reply_token(tail)
                yield tail

        if self.config.turns.stream:
            for number, sentence in enumerate(sentences(tokens(), FIRST_CLAUSE_WORDS)):
                observers.sentence_ready(sentence)
                if voice is not None:
                    voice.say(sentence)
                    if number == 0:  # the next token waits: the first clause has the cores to itself
                        voice.wait_for_first(turn.cut.is_set)
        else:
            # The sequential baseline: the whole reply, then all of its speech, then playback.
            whole = "".join(tokens()).strip()
            observers.sentence_ready(whole)
            if voice is not None and whole:
                voice.say(whole)

    # ------------------------------------------------------------------ the speculation worker's steps

    def _transcribe_ahead(self, audio: np.ndarray) -> Transcript:
        assert self.engines.transcriber is not None
        return self.engines.transcriber.transcribe(audio, self.language)

    def _begin(self, heard: Transcript, cancelled: threading.Event) -> Reply | None:
        """Begin the reply a turn with this transcript would get: its prompt computed into the model's
        cache (where the back end can do that alone), and its stream opened."""
        text = heard.text
        if self.wake is not None:
            addressed = self.wake.peek(heard.text, self.wake.addressed_now)
            if addressed is None or not has_words(addressed):
                return None  # not addressed (yet), or the wake word alone: nothing to begin
            text = addressed
        try:
            fitted = self._fit(self._asked(clean(text), heard.language or self.language))
        except MessageTooLong:
            return None  # the turn itself says so
        chat = self.engines.chat
        tools = self.tools
        prefilled = 0
        if isinstance(chat, Prefills):
            args = (fitted.messages, cancelled, tools) if tools else (fitted.messages, cancelled)
            prefilled = chat.prefill(*args)
        reply = Reply(fitted.messages, prefilled)
        if not cancelled.is_set():
            reply.stream = self._stream(fitted.messages, tools)
        return reply

    def _hold_first(self, tokens: list[str], whole: bool, heard: Transcript) -> Held | None:
        """The reply's first piece, once these tokens complete it, synthesized in the pause (on the
        speculation worker, which holds the engines: one synthesis at a time). The turn's voice plays it
        as soon as the turn is confirmed; a turn for other words never sees it."""
        cleaner = Cleaner()
        if self.tools:  # a call's text is not speech: what is, so far (none, if it begins with a call)
            finder = CallFinder()
            tokens = [finder.feed(token) for token in tokens] + ([finder.flush()] if whole else [])
        pieces = [piece for piece in (cleaner.feed(token) for token in tokens) if piece]
        if whole and (tail := cleaner.flush()):
            pieces.append(tail)
        piece = first_piece(pieces, FIRST_CLAUSE_WORDS, whole)
        if piece is None:
            return None
        language = heard.language or self.language
        synthesizer = self.engines.synthesizer
        spoken = speakable(piece)
        if synthesizer is None or not self.engines.sinks or not has_words(spoken):
            return Held(piece, language, None)
        try:
            audio = synthesizer.synthesize(spoken, language)
        except Exception as exc:  # the turn's own voice meets the error, and says so
            log.debug("speaking ahead failed: %s", exc)
            return Held(piece, language, None)
        log.debug("the reply's first piece is spoken ahead: %r", piece)
        return Held(piece, language, audio)

    # ------------------------------------------------------------------ before and after the session

    def warm_up(self) -> None:
        """One tiny inference per engine, so the first turn is as fast as the others.

        The chat model also keeps the prompt's beginning evaluated, which the first turn reuses: the
        system prompt, and the history of a resumed conversation. A system prompt that leaves no room
        in the context is a usage error, found here rather than at the first turn.
        """
        chat, transcriber, synthesizer = self.engines.chat, self.engines.transcriber, self.engines.synthesizer
        with self._lock:
            if transcriber is not None:
                transcriber.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), self.language or "en")
            try:
                fitted = self._fit("Hi")
            except MessageTooLong:
                system = chat.count_tokens(Conversation(self.conversation.system_prompt).messages)
                raise UsageError(
                    f"the system prompt takes {system} tokens, but --context {chat.context_size} with "
                    f"--max-tokens {self.options.max_tokens} leaves {self.budget} for the whole prompt: "
                    "shorten --system-prompt, raise --context or lower --max-tokens"
                ) from None
            for _ in chat.stream(fitted.messages, GenerationOptions(1, 0.0, self.options.seed)):
                pass
            if synthesizer is not None and self.engines.sinks:
                audio = synthesizer.synthesize("Hi", self.language)
                for sink in self.engines.sinks:
                    sink.prepare(audio.sample_rate)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the speculation worker, then free the model, once nothing is inside it. (The sinks and
        the transcript are their maker's to close: see app.py.)"""
        self.speculator.close()
        if self._lock.acquire(timeout=ENGINES_WAIT):
            try:
                self.engines.chat.close()
            finally:
                self._lock.release()
        else:  # never free a model in use: the process's end frees it
            log.warning(
                "the language model is still busy after %.0f s: left to the system to free", ENGINES_WAIT
            )
