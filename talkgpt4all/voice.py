"""Speaking a reply while it is written: sentences -> a synthesis thread -> a playback thread.

Sentence 1 plays while sentence 2 is synthesized and sentence 3 generated. Order is kept by the two FIFO
queues and the single thread at each stage. stop() silences it at once, from any thread: the sinks drop
what they hold, the queues are drained, and `played` tells which sentences the user heard.

A Voice is a context manager, and the turn that owns it uses it as one: leaving it on any exception
(Ctrl-C, a signal, a failure) stops the sound first, and leaving it always joins its two threads and ends
the reply in every sink. Nothing of it outlives the turn.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import TracebackType

from talkgpt4all.audio import Audio, AudioSink
from talkgpt4all.speculation import Held
from talkgpt4all.text import has_words, speakable
from talkgpt4all.tts import Synthesizer

log = logging.getLogger("talkgpt4all")

_DONE = None  # end-of-reply marker in the queues
WAIT_STEP = 0.05  # seconds: waits are this short, so Ctrl-C reaches the main thread at once


class Voice:
    """One reply's voice: say() sentences in order, then finish(), inside `with`."""

    def __init__(
        self,
        synthesizer: Synthesizer,
        sinks: list[AudioSink],
        *,
        turn: int,
        language: str | None,
        may_sound: Callable[[], bool] = lambda: True,
        on_first_audio: Callable[[], None] = lambda: None,
        held: Held | None = None,
    ) -> None:
        """may_sound is asked just before the first sound is played (False: the reply is dropped
        without a sound); on_first_audio is told once it is. held: the first piece, already synthesized
        (in the user's pause), used if the first sentence said is that piece."""
        self.synthesizer, self.sinks, self.language = synthesizer, sinks, language
        self._held = held if held is not None and held.audio is not None else None
        self.may_sound, self.on_first_audio = may_sound, on_first_audio
        self._sounded = False
        self.played: list[str] = []  # sentences whose audio reached the sinks, in order
        self.error: BaseException | None = None  # why it stopped itself (synthesis or playback failed)
        self._stopped = threading.Event()
        self._played_out = threading.Event()  # the playback thread is done
        self._first_done = threading.Event()  # the first sentence said is synthesized (or never will be)
        self._texts: queue.Queue[str | None] = queue.Queue()
        self._audio: queue.Queue[tuple[str, Audio] | None] = queue.Queue()
        for sink in sinks:
            sink.begin_reply(turn)
        self._synthesis = threading.Thread(target=self._synthesize_loop, name="tts", daemon=True)
        self._playback = threading.Thread(target=self._play_loop, name="playback", daemon=True)
        self._synthesis.start()
        self._playback.start()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def say(self, sentence: str) -> None:
        """Queue a sentence; it is spoken after the ones before it."""
        self._texts.put(sentence)

    def wait_for_first(self, give_up: Callable[[], bool]) -> None:
        """Wait until the first sentence said is synthesized, the voice stopped, or give_up() is true.
        The turn holds the model back meanwhile: on two cores, generating beside the synthesis made the
        first clause take three times as long (piper: 0.27 s against 0.08 s alone), and the first
        sound is what the user waits for. The rest is generated while the first clause plays."""
        while not self._first_done.wait(WAIT_STEP):
            if self.stopped or give_up():
                return

    def finish(self) -> None:
        """Wait until everything queued has been played (or the voice was stopped)."""
        self._texts.put(_DONE)
        # An Event, not Thread.join(): a join interrupted by Ctrl-C can leave the thread marked as ended
        # while it still plays (Python 3.11).
        while not self._played_out.wait(WAIT_STEP):
            pass

    def stop(self) -> None:
        """Cut the reply off now: silence the sinks and let the threads drain. Safe from any thread."""
        self._stopped.set()
        for sink in self.sinks:
            sink.stop()

    def __enter__(self) -> Voice:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:
            self.stop()
        self._close()

    def _close(self) -> None:
        """Stop the threads (after what was queued, unless stopped) and end the reply in every sink."""
        self._texts.put(_DONE)
        self._synthesis.join()
        self._audio.put(_DONE)
        self._playback.join()
        for sink in self.sinks:
            sink.end_reply()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop()

    def _synthesize_loop(self) -> None:
        try:
            while (text := self._texts.get()) is not _DONE and not self.stopped:
                audio = self._synthesized(text)
                self._first_done.set()
                if self.stopped:
                    break
                if audio is not None:
                    self._audio.put((text, audio))
        finally:
            self._first_done.set()
            self._audio.put(_DONE)

    def _synthesized(self, text: str) -> Audio | None:
        """The sentence's audio: the held first piece if it is that, None if it has nothing to say
        (or synthesis failed, which stops the voice)."""
        held, self._held = self._held, None  # only ever the first piece
        if held is not None and held.audio is not None and held.text == text:
            return held.audio
        spoken = speakable(text)
        if not has_words(spoken):
            return None
        try:
            return self.synthesizer.synthesize(spoken, self.language)
        except Exception as exc:
            self._fail(exc)
            return None

    def _play_loop(self) -> None:
        try:
            while (item := self._audio.get()) is not _DONE and not self.stopped:
                text, audio = item
                if not len(audio.samples):  # no voice for it: shown, not spoken
                    self.played.append(text)
                    continue
                if not self._sounded:
                    if not self.may_sound():
                        break
                    self._sounded = True
                    self.on_first_audio()
                self.played.append(text)
                try:
                    for sink in self.sinks:
                        sink.write(audio)
                except Exception as exc:
                    self._fail(exc)
                    break
        finally:
            self._played_out.set()
