"""A turn's work starts when the user pauses, before the turn is known to be over.

Hands-free, while the listener waits to be sure the user has finished (200 ms to 1.5 s of silence), and
push-to-talk, while the user reaches for Enter, the speech so far is transcribed and the model computes
the prompt it would get, then starts writing the reply, on a worker thread of its own. If the pause
holds, the turn takes that work over, the reply's first words included: the wait for the end of the
turn no longer adds to the time to the first word. If the user speaks on, the work is dropped: nothing
was shown, spoken or kept, and the model's cache is only a cache (the next prompt reuses what matches
and recomputes the rest).

The engines are never used by two threads at once: one lock (the session's, made once) is held by the
worker for each piece of work, and by a turn from its claim to its release. A turn's claim stops the
work under way at its next step (unless it is for this very turn, which then waits for it), so that no
speculation starts until the turn is over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

from talkgpt4all.audio import Audio
from talkgpt4all.conversation import Message
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")


# The most of a reply written ahead: the first sentence or two. Generation goes on past it only once
# the turn has taken the work over.
AHEAD_TOKENS = 32


@dataclass
class Reply:
    """Where a turn's reply comes from: the prompt it answers, the tokens written so far (in the pause,
    when it was begun ahead), and the stream that writes the rest. Its one close() ends the stream."""

    messages: list[Message]
    prefilled: int = 0  # prompt tokens computed for it ahead of the turn
    stream: Generator[str, None, None] | None = None
    tokens: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        yield from list(self.tokens)
        if self.stream is not None:
            yield from self.stream

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@dataclass(frozen=True)
class Held:
    """The reply's first piece (a clause or a sentence), synthesized in the pause and held: it plays the
    moment the turn is confirmed, and is dropped without a sound if the user speaks on. audio is None
    when there was nothing to synthesize (no voice)."""

    text: str
    language: str | None
    audio: Audio | None


class Speculation:
    """The work done ahead for one would-be utterance."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.cancelled = threading.Event()  # the user spoke on: stop at the next step
        self.claimed = threading.Event()  # the turn takes it over: stop writing ahead
        self.done = threading.Event()
        self.heard: Transcript | None = None
        self.heard_at: float | None = None  # time.perf_counter() when the transcript was ready
        self.reply: Reply | None = None
        self.held: Held | None = None  # the reply's first piece, spoken ahead
        self.failed = False
        self._dropping = threading.Lock()

    def drop(self) -> None:
        """Nobody will take this work: end its reply's stream (only once the worker is done with it)."""
        self.cancelled.set()
        with self._dropping:
            reply, self.reply = self.reply, None
        if reply is not None:
            reply.close()

    def fits(self, audio: np.ndarray) -> bool:
        """Whether the utterance is the one this work was for: it begins with exactly this audio (the
        segmenter guarantees that the rest of it is the pause that ended it)."""
        n = len(self.audio)
        return len(audio) >= n and np.array_equal(audio[:n], self.audio)


class EngineLock:
    """The lock every use of the models goes through. It knows which thread holds it, so that a thread
    interrupted (Ctrl-C) as it took the lock can give it back, whether or not it got it."""

    WAIT_STEP = 0.05  # seconds: waits are this short, so Ctrl-C reaches the main thread at once

    def __init__(self) -> None:
        self._free = threading.Condition()
        self._owner: int | None = None

    def acquire(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._free:
            while self._owner is not None:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._free.wait(self.WAIT_STEP)
            self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        """Give the lock back, if this thread holds it (else nothing)."""
        with self._free:
            if self._owner == threading.get_ident():
                self._owner = None
                self._free.notify_all()

    def __enter__(self) -> EngineLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Speculator:
    """One worker thread doing the latest speculation; the turns claim its results.

    `engines` is the lock every use of the models goes through: the worker holds it for each piece of
    work, a turn from claim() to release().
    """

    def __init__(
        self,
        transcribe: Callable[[np.ndarray], Transcript],
        begin: Callable[[Transcript, threading.Event], Reply | None] | None = None,
        engines: EngineLock | None = None,
        hold: Callable[[list[str], bool, Transcript], Held | None] | None = None,
    ) -> None:
        """transcribe hears an utterance; begin(heard, cancelled) computes the prompt for it and opens
        the reply's stream (None: nothing to begin); hold(tokens, whole, heard) synthesizes the reply's
        first piece once these tokens complete it (None: not yet; whole: the reply ends there)."""
        self.transcribe, self.begin, self.hold = transcribe, begin, hold
        self.engines = engines or EngineLock()
        self._lock = threading.Condition()
        self._pending: Speculation | None = None  # waiting for the worker
        self._latest: Speculation | None = None  # taken by the worker: under way or done
        self._busy = False  # a turn has claimed the engines
        self._closed = False
        self._thread: threading.Thread | None = None
        self.started = self.used = 0  # counts, for the log and the tests

    def start(self, audio: np.ndarray) -> None:
        """The user paused: begin on this utterance (from the listener; never blocks it)."""
        with self._lock:
            if self._busy or self._closed:
                return
            self._drop()
            self._pending = Speculation(audio)
            self.started += 1
            log.debug("speculating on %.2f s of speech", len(audio) / 16000)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="speculation", daemon=True)
                self._thread.start()
            self._lock.notify()

    def cancel(self) -> None:
        """The user spoke on: what was started is stale."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        self._pending = None
        if self._latest is not None:
            self._latest.cancelled.set()

    def heard(self) -> Transcript | None:
        """The transcript of the pause under way, once the worker has it: None before, for stale work,
        and while a turn holds the engines (the work then is the turn's, not this pause's)."""
        with self._lock:
            spec = None if self._busy or self._pending is not None else self._latest
        if spec is None or spec.cancelled.is_set():
            return None
        return spec.heard

    def claim(self, audio: np.ndarray | None) -> Speculation | None:
        """A turn starts, for this utterance (None: a typed turn): the engines are its own until
        release(). Returns the finished work for this very utterance, if there is some."""
        with self._lock:
            self._busy = True
            pending, latest = self._pending, self._latest
            # The newest work for this utterance: still waiting for the worker (which is finishing
            # stale work), or taken by it.
            chosen = next(
                (
                    s
                    for s in (pending, latest)
                    if s is not None and audio is not None and s.fits(audio) and not s.cancelled.is_set()
                ),
                None,
            )
            if pending is not chosen:
                self._pending = None
            if latest is not None and latest is not chosen:
                latest.cancelled.set()
            if chosen is not None:
                chosen.claimed.set()
        # The work for this turn is finished (it is the turn's head start); the rest stops at its next
        # step. Then the engines are the turn's. (Interrupted meanwhile, by Ctrl-C: the turn's release()
        # gives back whatever was taken.)
        if chosen is not None:
            while not chosen.done.wait(EngineLock.WAIT_STEP):
                pass
        self.engines.acquire()
        if latest is not None and latest is not chosen:
            latest.drop()
        if chosen is None or chosen.cancelled.is_set() or chosen.failed or chosen.heard is None:
            if chosen is not None:
                chosen.drop()
            log.debug("the turn does its own speech to text (%d speculations so far)", self.started)
            return None
        self.used += 1
        log.debug("the turn takes over the speculation (%d of %d used)", self.used, self.started)
        return chosen

    def release(self) -> None:
        """The turn is over: its work (and the reply it took over) is done with."""
        with self._lock:
            self._busy = False
            self._latest = None
        self.engines.release()

    def close(self) -> None:
        """Stop the worker (at its next step) and end its thread. Whatever it is inside is finished
        first: the engines' lock says when that is."""
        with self._lock:
            self._closed = True
            self._drop()
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                spec, self._pending = self._pending, None
                assert spec is not None
                stale, self._latest = self._latest, spec
            with self.engines:
                if stale is not None:
                    stale.drop()  # its reply's stream is closed before the model is used again
                try:
                    self._speculate(spec)
                except Exception as exc:  # the turn does the work again, and meets the error itself
                    log.debug("speculation failed: %s", exc)
                    spec.failed = True
                finally:
                    spec.done.set()

    def _speculate(self, spec: Speculation) -> None:
        if spec.cancelled.is_set():
            return
        spec.heard = self.transcribe(spec.audio)
        spec.heard_at = time.perf_counter()
        if self.begin is None or not spec.heard.text or spec.cancelled.is_set():
            return
        spec.reply = reply = self.begin(spec.heard, spec.cancelled)
        if reply is None or reply.stream is None:
            return
        # Write ahead until the turn takes over (it goes on with the same stream), the user speaks on,
        # or the first sentence or two are written. The first piece is spoken as soon as it is written.
        while not (spec.cancelled.is_set() or spec.claimed.is_set()) and len(reply.tokens) < AHEAD_TOKENS:
            token = next(reply.stream, None)
            if token is None:
                reply.stream = None  # the whole reply is written
                self._hold(spec, reply, whole=True)
                return
            reply.tokens.append(token)
            self._hold(spec, reply, whole=False)

    def _hold(self, spec: Speculation, reply: Reply, whole: bool) -> None:
        if self.hold is None or spec.held is not None or spec.cancelled.is_set() or spec.heard is None:
            return
        spec.held = self.hold(reply.tokens, whole, spec.heard)
