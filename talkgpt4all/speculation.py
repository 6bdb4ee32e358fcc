"""A turn's work starts when the user pauses, before the turn is known to be over.

Hands-free, while the listener waits to be sure the user has finished (200 ms to 1.5 s of silence), and
push-to-talk, while the user reaches for Enter, the speech so far is transcribed and the model computes
the prompt it would get, on a worker thread of its own. If the pause holds, the turn takes that work
and only has to generate: the wait for the end of the turn no longer adds to the time to the first
word. If the user speaks on, the work is dropped: it was never shown, spoken or kept, and the model's
cache is only a cache (the next prompt reuses what matches and recomputes the rest).

The engines are never used by two threads at once. A turn claims them: from then until it is released,
no speculation starts, and one under way is finished (or stopped at its next step) before the turn
goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")


class Speculation:
    """The work done ahead for one would-be utterance."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.cancelled = threading.Event()  # the user spoke on: stop at the next step
        self.done = threading.Event()
        self.heard: Transcript | None = None
        self.heard_at: float | None = None  # time.perf_counter() when the transcript was ready
        self.prefilled = 0  # prompt tokens the model computed ahead
        self.failed = False

    def fits(self, audio: np.ndarray) -> bool:
        """Whether the utterance is the one this work was for: it begins with exactly this audio (the
        segmenter guarantees that the rest of it is the pause that ended it)."""
        n = len(self.audio)
        return len(audio) >= n and np.array_equal(audio[:n], self.audio)


class Speculator:
    """One worker thread doing the latest speculation; the turns claim its results."""

    def __init__(
        self,
        transcribe: Callable[[np.ndarray], Transcript],
        prefill: Callable[[str, threading.Event], int] | None = None,
    ) -> None:
        self.transcribe, self.prefill = transcribe, prefill
        self._lock = threading.Condition()
        self._pending: Speculation | None = None  # waiting for the worker
        self._latest: Speculation | None = None  # taken by the worker: under way or done
        self._busy = False  # a turn has the engines
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
        # The worker is between steps soon; once it has done what it holds, the engines are free.
        for spec in (latest, chosen):
            if spec is not None:
                spec.done.wait()
        if chosen is None or chosen.cancelled.is_set() or chosen.failed or chosen.heard is None:
            return None
        self.used += 1
        return chosen

    def release(self) -> None:
        with self._lock:
            self._busy = False
            self._latest = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(2.0)

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                spec, self._pending = self._pending, None
                assert spec is not None
                self._latest = spec
            try:
                if not spec.cancelled.is_set():
                    spec.heard = self.transcribe(spec.audio)
                    spec.heard_at = time.perf_counter()
                if self.prefill and spec.heard and spec.heard.text and not spec.cancelled.is_set():
                    spec.prefilled = self.prefill(spec.heard.text, spec.cancelled)
            except Exception as exc:  # the turn does the work again, and meets the error itself
                log.debug("speculation failed: %s", exc)
                spec.failed = True
            finally:
                spec.done.set()
