"""Speaking a reply while it is written: sentences -> a synthesis thread -> a playback thread.

Sentence 1 plays while sentence 2 is synthesized and sentence 3 generated. Order is kept by the two
FIFO queues and the single thread at each stage. Everything stops at once when `interrupt` is set:
playback is cut, the queues are drained, and `played` tells which sentences the user heard.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from talkgpt4all.audio import Audio, AudioSink
from talkgpt4all.text import has_words, speakable
from talkgpt4all.tts import Synthesizer

log = logging.getLogger("talkgpt4all")

_DONE = None  # end-of-reply marker in the queues


class Speaker:
    """One reply's voice. say() sentences in order, then finish(), and always close()."""

    def __init__(
        self,
        synthesizer: Synthesizer,
        sinks: list[AudioSink],
        *,
        turn: int,
        language: str | None,
        interrupt: threading.Event,
        on_first_audio: Callable[[], None] = lambda: None,
    ) -> None:
        self.synthesizer, self.sinks, self.language = synthesizer, sinks, language
        self.interrupt = interrupt
        self.on_first_audio = on_first_audio
        self.played: list[str] = []  # sentences whose audio reached the sinks, in order
        self.error: BaseException | None = None
        self._texts: queue.Queue[str | None] = queue.Queue()
        self._audio: queue.Queue[tuple[str, Audio] | None] = queue.Queue()
        for sink in sinks:
            sink.begin_reply(turn)
        self._synthesis = threading.Thread(target=self._synthesize_loop, name="tts", daemon=True)
        self._playback = threading.Thread(target=self._play_loop, name="playback", daemon=True)
        self._synthesis.start()
        self._playback.start()

    def say(self, sentence: str) -> None:
        """Queue a sentence; it is spoken after the ones before it."""
        self._texts.put(sentence)

    def finish(self) -> None:
        """Wait until everything queued has been played (or the reply was interrupted)."""
        self._texts.put(_DONE)
        while self._playback.is_alive():
            self._playback.join(0.05)  # short waits, so Ctrl-C reaches the main thread at once

    def stop(self) -> None:
        """Cut the reply off now: stop the sound and let the workers drain. Safe from any thread."""
        self.interrupt.set()
        for sink in self.sinks:
            sink.stop()

    def close(self) -> None:
        """Stop the workers (cutting playback off if interrupted) and end the reply in every sink."""
        if self.interrupt.is_set():
            self.stop()
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
        while (text := self._texts.get()) is not _DONE and not self.interrupt.is_set():
            spoken = speakable(text)
            if not has_words(spoken):
                continue
            try:
                audio = self.synthesizer.synthesize(spoken, self.language)
            except Exception as exc:
                self._fail(exc)
                break
            self._audio.put((text, audio))
        self._audio.put(_DONE)

    def _play_loop(self) -> None:
        while (item := self._audio.get()) is not _DONE and not self.interrupt.is_set():
            text, audio = item
            if not len(audio.samples):  # no voice for it: shown, not spoken
                self.played.append(text)
                continue
            if not self.played:
                self.on_first_audio()
            self.played.append(text)
            try:
                for sink in self.sinks:
                    sink.write(audio)
            except Exception as exc:
                self._fail(exc)
                break
