"""The loops that feed turns to a Session: headless (--input files, --text lines) and interactive
(push-to-talk, hands-free --vad), with the threads that read the keyboard and listen to the microphone.

Every loop takes the streams it reads and writes as arguments, so a test drives it in process with
scripted input. Each thread owns its shutdown (an Event and a join with a timeout) and hands its errors
to the main loop instead of dying silently.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, HearsOverEcho, Watchable
from talkgpt4all.errors import DeviceError, ExitCode, one_line
from talkgpt4all.status import METER_FLOOR_DB, StatusLine, level_db
from talkgpt4all.tools.builtin import Due

if TYPE_CHECKING:
    from talkgpt4all.audio import Recorder
    from talkgpt4all.audio.echo import FarEnd
    from talkgpt4all.audio.vad import VadOptions
    from talkgpt4all.pipeline import Session, TurnResult
    from talkgpt4all.wake import Wake

log = logging.getLogger("talkgpt4all")

JOIN_TIMEOUT = 2.0  # seconds a thread gets to finish when the loop ends
MIC_SILENT_TIMEOUT = 5.0  # seconds without a single block from the microphone: it has stopped working
MIC_RETRY_SECONDS = 0.5  # while the microphone is gone: how often to look for it
# Waiting for the wake word, this many of the last pieces (3 s) are kept for the voice detector: the
# word, and the speech before it in the same breath.
WAITING_PIECES = 94
WAKE_LATELY_PIECES = 16  # a wake word heard this many pieces (of 32 ms) before speech began is its own


def decode_line(raw: bytes, number: int) -> str:
    """A line of input as text. Bytes that are not UTF-8 become "�" with a warning, so the rest of
    the line still counts; nothing is dropped silently."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        log.warning("line %d of the input is not valid UTF-8: the bytes that are not are shown as �", number)
    return text.rstrip("\r\n")


def numbered_lines(stream: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(iter(stream.readline, b""), 1):
        yield decode_line(raw, number)


# ---------------------------------------------------------------------------------------- headless


def exit_code(results: Iterable[TurnResult | None]) -> int:
    """Every turn runs, whatever happened to the ones before (as the whisper CLI does per file); the
    exit code says whether any failed. Each failure was shown, and recorded in the transcript."""
    ok = True
    for result in results:
        if result is not None and result.error:
            ok = False
    return ExitCode.OK if ok else ExitCode.ERROR


def run_inputs(session: Session, spoken: list[np.ndarray]) -> int:
    """--input: each file is a spoken turn, in order."""
    return exit_code(session.hear(audio, time.perf_counter()) for audio in spoken)


def run_text(session: Session, stream: IO[bytes]) -> int:
    """--text: each line of stdin is a typed turn, until the end of input."""
    return exit_code(
        session.reply(line.strip(), time.perf_counter()) for line in numbered_lines(stream) if line.strip()
    )


# ---------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Line:
    """A line typed: text to send, or (empty) Enter."""

    text: str


@dataclass(frozen=True)
class Utterance:
    """Speech cut out of the microphone stream: when it really ended (its last voiced moment), and,
    hands-free, how long after that the turn was judged over."""

    audio: np.ndarray
    speech_end: float
    endpoint: float | None = None
    addressed: bool = True  # with a wake word: known to be for the assistant (else its words decide)


@dataclass(frozen=True)
class EndOfInput:
    """Ctrl-D, or a terminal that went away."""


@dataclass(frozen=True)
class Failure:
    """A listening thread died; the loop reports it and ends."""

    error: BaseException


@dataclass
class MicGone:
    """Push-to-talk: the microphone went away while recording."""

    why: str


Event = Line | Utterance | EndOfInput | Failure | Due


class Inbox:
    """What the user does, in the order it happened: lines typed, utterances heard, the end of input."""

    def __init__(self) -> None:
        self._events: queue.Queue[Event] = queue.Queue()
        self._ended = False

    def put(self, event: Event) -> None:
        self._events.put(event)

    def get(self) -> Event:
        """The next event. After the end of input, every call says so."""
        event = self.get_or(lambda: None)
        assert not isinstance(event, MicGone)
        return event

    def get_or(self, check: Callable[[], MicGone | None]) -> Event | MicGone:
        """The next event, or what check finds first (it is asked a few times a second)."""
        while True:
            if self._ended and self._events.empty():
                return EndOfInput()
            try:
                event = self._events.get(timeout=0.1)  # short waits, so Ctrl-C gets through
            except queue.Empty:
                found = check()
                if found is not None:
                    return found
                continue
            if isinstance(event, EndOfInput):
                self._ended = True
            return event


class Keyboard:
    """Reads lines on its own thread into an inbox.

    During a reply (inside `replying()`), Enter stops the reply, and a line of text stops it and
    becomes the next turn. The end of input (Ctrl-D, or a closed terminal) stops a reply too, then
    ends the loop: Ctrl-D anywhere quits. A key pressed as the reply ends (the stop finds no turn to
    stop) is the user's next, as at the prompt.
    """

    def __init__(self, stream: IO[bytes], inbox: Inbox) -> None:
        self.stream, self.inbox = stream, inbox
        self._stop_reply: Callable[[], bool] | None = None
        self._thread = threading.Thread(target=self._read, name="keyboard", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in numbered_lines(self.stream):
                stop_reply = self._stop_reply
                if stop_reply is None or not stop_reply() or text.strip():
                    self.inbox.put(Line(text))
        except (OSError, ValueError) as exc:  # EIO from a terminal that closed, or a closed stream
            log.debug("keyboard input ended: %s", exc)
        except Exception as exc:
            self.inbox.put(Failure(exc))
            return
        stop_reply = self._stop_reply
        if stop_reply is not None:
            stop_reply()
        self.inbox.put(EndOfInput())

    @contextmanager
    def replying(self, stop: Callable[[], bool]) -> Iterator[None]:
        """While inside, a line stops the reply (calling stop, which says whether there was one to
        stop) instead of waiting to be read."""
        self._stop_reply = stop
        try:
            yield
        finally:
            self._stop_reply = None


class SignalWatch:
    """Stops the turn in progress the moment Ctrl-C, SIGTERM or SIGHUP arrives, from a thread of its own.

    Python runs its signal handlers in the main thread only, between two steps of its own code: while the
    main thread is inside the model writing the next token (tens of milliseconds, far more on a busy
    machine), the reply would play on. The signal's number is also written to a socket as it arrives
    (signal.set_wakeup_fd), and this thread, reading it, cuts the turn off at once through the turn's
    one stop (session.stop). The main thread then unwinds as before: KeyboardInterrupt or SystemExit.
    Its owner (app.run) closes it, which ends and joins the thread.
    """

    SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s)

    def __init__(self, stop: Callable[[], bool]) -> None:
        self._stop = stop
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        # From the main thread only (ValueError elsewhere): a caller on another thread gets no watch.
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while numbers := self._read.recv(64):
                if any(number in self.SIGNALS for number in numbers):
                    self._stop()
        except OSError as exc:  # the socket was closed under it
            log.debug("signal watch ended: %s", exc)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        self._write.close()  # the reader sees the end, and its thread returns
        self._thread.join(JOIN_TIMEOUT)
        self._read.close()


class Microphone(Protocol):
    """An always-open microphone (audio.devices.MicStream), as the listener uses it."""

    captured_at: float  # time.perf_counter() when the last piece read had been recorded

    def start(self) -> None: ...

    def read(self, timeout: float = 0.1) -> np.ndarray | None: ...

    def close(self) -> None: ...

    # And, optionally (audio.devices.MicStream): audio.Watchable (whether it still hears the microphone
    # it should) and audio.HearsOverEcho (echo-cancelled).


class Listener:
    """Hands-free: cuts the microphone stream into utterances on its own thread, into the inbox.

    While a reply plays, the speakers' own sound must not become a turn: without barge-in, that time
    is deaf; with it, speech stops the reply (through on_start) and becomes the next turn.

    With a wake word (wake), speech counts once the assistant is addressed: the gate was open when it
    began, or the keyword model heard the word in it (the model hears every piece, echo-cancelled).
    Other speech starts nothing: no status, no speech to text, no turn. With a wake phrase, the
    transcript decides, so every utterance goes on to the session, marked.
    """

    def __init__(
        self,
        mic: Microphone,
        options: VadOptions,
        inbox: Inbox,
        *,
        barge_in: bool = False,
        on_start: Callable[[bool], None] = lambda replying: None,
        clock: Callable[[], float] = time.perf_counter,  # the microphone's clock (captured_at)
        turn: Callable[[np.ndarray], float] | None = None,  # the turn model, if any
        on_pause: Callable[[np.ndarray], None] | None = None,  # a pause began: the utterance so far
        on_resume: Callable[[], None] | None = None,  # and speech went on after it
        words: Callable[[], str | None] | None = None,  # the pause's transcript, once there is one
        sounded: Callable[[], bool] = lambda: True,  # the reply under way has made a sound
        far: FarEnd | None = None,  # with echo cancellation: what the speakers play
        notify: Callable[[str], None] = lambda text: None,  # a one-line notice (the microphone came or went)
        wake: Wake | None = None,  # --wake, --wake-phrase: what addresses the assistant
    ) -> None:
        from talkgpt4all.audio.vad import Segmenter

        self.mic, self.inbox, self.barge_in, self.clock = mic, inbox, barge_in, clock
        self.far, self.notify, self.wake = far, notify, wake
        self._on_start = on_start
        self._pieces = 0  # read from the microphone
        self._woken_piece = -(10**9)  # the piece in which the wake word was last heard
        # Waiting for the wake word, the voice detector rests, and the last pieces wait here: heard, the
        # word sends them through it at once, so that a request said in the same breath keeps its start.
        self._waiting: deque[np.ndarray] = deque(maxlen=WAITING_PIECES)
        self._catching_up = False
        self.level = METER_FLOOR_DB  # of the last piece heard, in dBFS: the status line's meter
        self.replying = threading.Event()
        self.sounded = sounded
        self._stopping = threading.Event()
        self._on_pause = on_pause
        self._last: np.ndarray | None = None  # the last utterance put in the inbox
        self._carried: np.ndarray | None = None  # it was taken back: the next utterance begins with it
        self._segmenter = Segmenter(
            options,
            on_start=self._started,
            turn=turn,
            on_pause=self._paused if on_pause else None,
            on_resume=on_resume,
            words=words,
        )
        self._thread = threading.Thread(target=self._listen, name="listener", daemon=True)

    def start(self) -> None:
        self.mic.start()
        self._thread.start()

    def hearing(self) -> bool:
        """An utterance is under way."""
        return self._segmenter.speaking

    def speech_starting(self) -> bool:
        """The microphone hears what may be the start of speech, not yet long enough to be sure."""
        return self._segmenter.starting

    def carry_over(self) -> None:
        """The turn made of the last utterance was taken back (the user spoke on before its reply made
        a sound): the utterance under way goes on from it, as one (from on_start, on this thread)."""
        self._carried = self._last

    def _carrying(self, audio: np.ndarray) -> np.ndarray:
        return audio if self._carried is None else np.concatenate([self._carried, audio])

    def _paused(self, audio: np.ndarray) -> None:
        assert self._on_pause is not None
        if self._catching_up:
            return
        if self.wake is None or self.wake.addressed_now or self.wake.by_text:
            self._on_pause(self._carrying(audio))

    def _started(self) -> None:
        """Speech began (the segmenter is sure of it)."""
        replying, wake = self.replying.is_set(), self.wake
        if wake is not None:
            # (the keyword model may have heard the word in the speech's first moments, before the
            # segmenter was sure it was speech)
            lately = self._pieces - self._woken_piece <= WAKE_LATELY_PIECES
            wake.addressed_now = replying or wake.gate.is_open() or lately
            if not wake.addressed_now:
                return  # not (yet) for the assistant
        self._on_start(replying)

    def _hear_wake_word(self, chunk: np.ndarray) -> bool:
        """The keyword model hears every piece, so that its state follows the stream. Whether it heard
        the word (outside a reply) in this one."""
        wake = self.wake
        if wake is None or wake.spotter is None or not wake.spotter.feed(chunk):
            return False
        if self.replying.is_set():  # the reply's own words, or a barge-in, which needs no wake word
            return False
        log.info("wake word heard (at %.3f)", time.perf_counter())
        wake.addressed_now = True
        self._woken_piece = self._pieces
        wake.heard()
        return True

    def _waits(self, chunk: np.ndarray) -> bool:
        """The keyword model hears the piece; whether it waits, unheard by the voice detector."""
        if self._hear_wake_word(chunk) and self._waiting:
            self._catch_up()
        if self._dormant():
            self._waiting.append(chunk)
            return True
        self._waiting.clear()
        return False

    def _dormant(self) -> bool:
        """Waiting for the keyword model, with nothing else to listen for: no reply, the gate shut, no
        utterance under way. (With a wake phrase, every utterance is transcribed: never.)"""
        wake, segmenter = self.wake, self._segmenter
        return (
            wake is not None
            and wake.spotter is not None
            and not wake.addressed_now
            and not self.replying.is_set()
            and not wake.gate.is_open()
            and not segmenter.speaking
            and not segmenter.starting
            and self._carried is None
        )

    def _catch_up(self) -> None:
        """The wake word was heard while the voice detector rested: it goes through the pieces it
        missed, from a clean start. An utterance that ends among them ended before the word: not for
        the assistant."""
        segmenter = self._segmenter
        segmenter.reset()
        self._catching_up = True  # no speculation on pauses already over
        try:
            for piece in self._waiting:
                if segmenter.feed(piece) is not None:
                    log.debug("speech before the wake word: not for the assistant")
        finally:
            self._catching_up = False
        self._waiting.clear()

    def _addressed(self) -> bool:
        """Whether the utterance that just ended is for the assistant, as far as the listener knows."""
        wake = self.wake
        return wake is None or wake.addressed_now or wake.gate.is_open()

    def _listen(self) -> None:
        segmenter = self._segmenter
        last_sound = time.monotonic()
        # When each recent piece was recorded: the turn's clock starts at its last voiced piece.
        recorded: deque[float] = deque(maxlen=10_000)
        mic = self.mic
        watched = mic if isinstance(mic, Watchable) else None
        gone: str | None = None  # why the microphone went away, until it sends again
        try:
            while not self._stopping.is_set():
                chunk = mic.read()
                why = watched.lost() if watched is not None else None
                if why is None and chunk is None and time.monotonic() - last_sound > MIC_SILENT_TIMEOUT:
                    why = f"it sent nothing for {MIC_SILENT_TIMEOUT:.0f} s"
                if why is not None:
                    if gone is None:
                        gone = why
                        self.notify(f"The microphone is gone ({why}): waiting for it to come back…")
                        segmenter.reset()
                        self._carried = None
                    self._reopen()
                    last_sound = time.monotonic()
                    continue
                if chunk is None:
                    continue
                if gone is not None:
                    gone = None
                    self.notify("The microphone is back: listening again.")
                last_sound = time.monotonic()
                self.level = level_db(chunk)
                recorded.append(self.mic.captured_at)
                self._pieces += 1
                if self._waits(chunk):
                    continue
                if self.replying.is_set() and not self.barge_in and self.sounded():
                    segmenter.reset()
                    continue
                utterance = segmenter.feed(chunk, **self._echo_state())
                if utterance is not None:
                    decided = self.clock()
                    ended = recorded[-1 - min(segmenter.trailing_chunks, len(recorded) - 1)]
                    utterance, self._carried = self._carrying(utterance), None
                    addressed = self._addressed()
                    if not addressed and self.wake is not None and not self.wake.by_text:
                        log.debug(
                            "speech without the wake word (%.1f s): not for the assistant",
                            len(utterance) / SAMPLE_RATE,
                        )
                        continue
                    self._last = utterance
                    self.inbox.put(Utterance(utterance, ended, endpoint=decided - ended, addressed=addressed))
        except BaseException as exc:
            self.inbox.put(Failure(exc))

    def _echo_state(self) -> dict[str, bool]:
        """Whether the speakers may be heard in the piece just read, and whether the echo canceller found
        more than their echo in it."""
        if self.far is None:
            return {}
        mic = self.mic
        if isinstance(mic, HearsOverEcho):
            return {"echo": self.far.sounding(mic.recorded_at), "over_echo": mic.over_echo}
        return {"echo": self.far.sounding(time.perf_counter())}

    def _reopen(self) -> None:
        """Close the microphone's stream, and open it again once the microphone it should hear is there
        (or, without a way to tell, try it), unless the listener is stopping first."""
        try:
            self.mic.close()
        except Exception as exc:  # a device already gone cannot be closed cleanly; nothing is lost
            log.debug("closing the microphone: %s", exc)
        mic = self.mic
        while not self._stopping.wait(MIC_RETRY_SECONDS):
            if isinstance(mic, Watchable) and not mic.available():
                continue
            try:
                self.mic.start()
                return
            except DeviceError as exc:
                log.debug("the microphone is not back yet: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT)
        try:
            self.mic.close()
        except Exception as exc:  # a device already gone cannot be closed cleanly; nothing is lost
            log.debug("closing the microphone: %s", exc)


# ---------------------------------------------------------------------------------------- interactive

PROMPT = "Press Enter to talk (or type a message): "


def _reply_to(session: Session, keyboard: Keyboard, event: Line | Utterance) -> TurnResult | None:
    with keyboard.replying(session.stop):
        if isinstance(event, Line):
            return session.reply(event.text.strip(), time.perf_counter())
        return session.hear(event.audio, event.speech_end, event.endpoint, addressed=event.addressed)


def _announce(session: Session, keyboard: Keyboard, event: Due) -> None:
    """A timer is due, between turns: it is said, and Enter (or speech, hands-free) stops it."""
    with keyboard.replying(session.stop):
        session.announce(event.message)


def _failure(event: Failure) -> DeviceError:
    error = event.error
    if isinstance(error, DeviceError):
        return error
    return DeviceError(one_line(f"listening stopped ({type(error).__name__}: {error}): start again"))


class RecordingWatcher:
    """Push-to-talk: follows a recording as it grows, on its own thread, and tells the session when the
    user pauses (the recording so far may be all of it) and when they speak on. The turn's speech to
    text and prefill then start before Enter is pressed: after a pause, the last of it is the final
    transcript. The recording itself is never held up.
    """

    POLL = 0.05  # seconds between looks at the recording

    def __init__(
        self,
        recorder: Recorder,
        on_pause: Callable[[np.ndarray], None],
        on_resume: Callable[[], None],
        options: VadOptions | None = None,
    ) -> None:
        from talkgpt4all.audio.vad import CHUNK, Segmenter

        self.recorder, self._on_pause, self._chunk = recorder, on_pause, CHUNK
        self._recording: np.ndarray | None = None
        self.fed = 0  # samples of the recording the segmenter has seen
        self._segmenter = Segmenter(options, on_pause=self._paused, on_resume=on_resume)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="recording-watcher", daemon=True)
        self._thread.start()

    def _paused(self, _speech: np.ndarray) -> None:
        # The turn's audio is the whole recording (silence before the speech included), not the
        # segmenter's cut of it.
        assert self._recording is not None
        self._on_pause(self._recording[: self.fed])

    def _feed(self, recording: np.ndarray) -> None:
        self._recording = recording
        while self.fed + self._chunk <= len(recording):
            self.fed += self._chunk
            self._segmenter.feed(recording[self.fed - self._chunk : self.fed])

    def _watch(self) -> None:
        try:
            while not self._done.wait(self.POLL):
                self._feed(self.recorder.so_far())
        except Exception as exc:  # only a head start is lost: the turn transcribes its own audio
            log.debug("following the recording: %s", exc)

    def finish(self, recording: np.ndarray) -> None:
        """Recording has stopped: the watcher hears the rest of it (speech there makes the work done
        in an earlier pause stale), then ends."""
        self._done.set()
        self._thread.join(JOIN_TIMEOUT)
        try:
            self._feed(recording)
        except Exception as exc:
            log.debug("following the recording: %s", exc)


def push_to_talk(
    session: Session,
    recorder: Recorder,
    keys: IO[bytes],
    err: IO[str],
    *,
    speculate: bool = True,
    status: StatusLine | None = None,
) -> int:
    """Enter starts and stops recording; a typed line is sent as text. With speculate, the turn's work
    starts when the user pauses before pressing Enter (see RecordingWatcher).

    During a reply, Enter or Ctrl-C stops it, and a typed line stops it and is the next turn. Ctrl-C
    or Ctrl-D at the prompt quits; Ctrl-D while recording quits too, dropping the recording.
    """
    inbox = Inbox()
    keyboard = Keyboard(keys, inbox)
    line = status or StatusLine(err)
    err.write(
        "Ready. Press Enter, speak, then press Enter again. Enter or Ctrl-C stops a reply; Ctrl-D quits.\n"
    )
    pending: Line | None = None
    session.post = inbox.put
    try:
        while True:
            if pending is None:
                err.write(PROMPT)
                err.flush()
            event, pending = pending or inbox.get(), None
            if isinstance(event, EndOfInput):
                return ExitCode.OK
            if isinstance(event, Failure):
                raise _failure(event) from event.error
            if isinstance(event, Due):
                _announce(session, keyboard, event)
                continue
            if not isinstance(event, Line) or event.text.strip():
                _reply_to(session, keyboard, event)
                continue
            utterance, after = _recording(recorder, inbox, line, session if speculate else None)
            if isinstance(after, EndOfInput):
                return ExitCode.OK
            if isinstance(after, Failure):
                raise _failure(after) from after.error
            if isinstance(after, Line) and after.text.strip():
                pending = after  # typed while recording: the next turn, after the spoken one
            if utterance is not None:
                line.show("thinking")
                _reply_to(session, keyboard, utterance)
    finally:
        session.post = None
        line.close()


def _recording(
    recorder: Recorder, inbox: Inbox, line: StatusLine, session: Session | None
) -> tuple[Utterance | None, Event | MicGone | None]:
    """Enter was pressed: record until the next event. The turn it makes (None: no microphone, or too
    little was recorded before it went away), and the event that ended the recording."""
    if isinstance(recorder, Watchable) and not recorder.available():
        line.note("The microphone is not there: connect it, then press Enter again.")
        return None, None
    try:
        audio, speech_end, after = _record(recorder, inbox, line, session)
    except DeviceError as exc:  # it could not be opened
        line.note(f"The microphone is not there ({exc}): connect it, then press Enter again.")
        return None, None
    if isinstance(after, MicGone):
        line.note(f"The microphone is gone ({after.why}): the recording stopped there.")
        if len(audio) < SAMPLE_RATE // 4:
            return None, after
    if isinstance(after, (EndOfInput, Failure)):
        return None, after
    return Utterance(audio, speech_end), after


def _record(
    rec: Recorder, inbox: Inbox, status: StatusLine, session: Session | None = None
) -> tuple[np.ndarray, float, Event | MicGone]:
    """Record until the next line (or the end of input, or the microphone going away), with a live
    level meter. Returns the audio, when speech ended, and the event that ended the recording. With a
    session, its work starts in the user's pauses."""
    rec.start()
    watched = rec if isinstance(rec, Watchable) else None
    watcher = RecordingWatcher(rec, session.speculate, session.cancel_speculation) if session else None
    status.show("recording", level=lambda: rec.level)

    def gone() -> MicGone | None:
        why = watched.lost() if watched is not None else None
        return MicGone(why) if why is not None else None

    due: list[Due] = []  # a timer due while the user records is said after the turn
    try:
        while isinstance(event := inbox.get_or(gone), Due):
            due.append(event)
    finally:
        for waiting in due:
            inbox.put(waiting)
        speech_end = time.perf_counter()
        audio = rec.stop()
        if watcher is not None:
            watcher.finish(audio)
        status.clear()
    return audio, speech_end, event


class Attention:
    """Hands-free: what the status line says while nothing is said, and, with a wake word, what hearing
    it does (the chime, from the listener's thread) and the follow-up window after each reply."""

    def __init__(
        self, line: StatusLine, listener: Callable[[], Listener], wake: Wake | None, chime: Callable[[], None]
    ) -> None:
        self.line, self.listener, self.wake, self.chime = line, listener, wake, chime
        if wake is not None:
            wake.on_wake = self.woken

    def _level(self) -> float:
        return self.listener().level

    def ready(self) -> str:
        if self.wake is None:
            return "Ready. Speak whenever you like; a pause ends your turn. Ctrl-C or Ctrl-D quits.\n"
        phrase = self.wake.phrase
        return f"Ready. Say '{phrase}', then your question; a pause ends your turn. Ctrl-C or Ctrl-D quits.\n"

    def idle(self) -> None:
        wake = self.wake
        if wake is None:
            self.line.show("listening", level=self._level)
        else:
            state = "listening" if wake.gate.is_open() else "waiting"
            self.line.show(state, level=self._level, words=wake.waiting)

    def woken(self) -> None:
        assert self.wake is not None
        self.chime()
        listener = self.listener()
        if listener.replying.is_set():  # (the phrase found in a turn's words: the status is the turn's)
            return
        if listener.hearing():  # the question goes on in the same breath
            self.line.show("hearing", level=self._level)
        else:
            self.line.show("listening", level=self._level, words=self.wake.waiting)

    def replied(self, result: TurnResult | None) -> None:
        if self.wake is not None and result is not None:
            self.wake.gate.replied()


def hands_free(
    session: Session,
    mic: Microphone,
    options: VadOptions,
    keys: IO[bytes],
    err: IO[str],
    *,
    barge_in: bool = False,
    turn: Callable[[np.ndarray], float] | None = None,
    speculate: bool = True,
    far: FarEnd | None = None,
    status: StatusLine | None = None,
    wake: Wake | None = None,
    chime: Callable[[], None] = lambda: None,
) -> int:
    """Turns start when the user speaks and end at a pause (or when the turn model hears that the user
    has finished); a typed line is a turn too. With speculate, the turn's work starts as the pause
    begins (see speculation.py).

    With a wake word, only speech that is addressed counts (see Listener): the chime says it was
    heard, and after each reply a follow-up needs none for a while (the status line counts it down).

    Enter or Ctrl-C stops a reply. Ctrl-D quits. If the microphone stops working, one line says so.
    """
    inbox = Inbox()
    line = status or StatusLine(err)
    line.barge_in = barge_in

    def speech_started(replying: bool) -> None:
        if replying and session.take_back():
            # The pause was not the end: the reply had not made a sound, and what was said goes on.
            listener.carry_over()
        elif replying:
            if not barge_in:  # heard before the reply sounded, too late to take the turn back
                return
            # With -v: when (on time.perf_counter()'s clock, the system's monotonic one), for bench/echo.py
            log.info("talked over: the reply stops (at %.3f)", time.perf_counter())
            session.stop()
            return
        line.show("hearing", level=lambda: listener.level)

    attention = Attention(line, lambda: listener, wake, chime)
    listener = Listener(
        mic,
        options,
        inbox,
        barge_in=barge_in,
        on_start=speech_started,
        turn=turn,
        on_pause=session.speculate if speculate else None,
        on_resume=session.cancel_speculation if speculate else None,
        words=session.heard_so_far if speculate else None,
        sounded=session.reply_sounded,
        far=far,
        notify=line.note,
        wake=wake,
    )
    session.speech_starting = listener.speech_starting
    session.post = inbox.put
    listener.start()
    try:
        keyboard = Keyboard(keys, inbox)
        err.write(attention.ready())
        while True:
            attention.idle()
            event = inbox.get()
            # (--wake-phrase: speech the listener could not tell was addressed is transcribed quietly:
            # the status line goes on waiting unless its words say the phrase)
            quiet = isinstance(event, Utterance) and not event.addressed
            if not quiet:
                line.clear()
            if isinstance(event, EndOfInput):
                return ExitCode.OK
            if isinstance(event, Failure):
                raise _failure(event) from event.error
            if isinstance(event, Line) and not event.text.strip():
                continue
            listener.replying.set()
            if isinstance(event, Utterance) and not quiet:
                line.show("thinking")
            try:
                if isinstance(event, Due):
                    _announce(session, keyboard, event)
                    continue
                result = _reply_to(session, keyboard, event)
            finally:
                listener.replying.clear()
            attention.replied(result)
    finally:
        session.post = None
        listener.stop()
        line.close()
