"""Reply audio written to WAV files: DIR/reply-001.wav, reply-002.wav, ..."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import soundfile as sf

from talkgpt4all.audio import Audio, resample
from talkgpt4all.errors import TalkError

log = logging.getLogger("talkgpt4all")


class WavFolderSink:
    """Writes each reply as one 16-bit PCM WAV file, sentence by sentence as they arrive.

    stop() may come from another thread (a key press) while the playback thread writes: it only marks
    the reply as cut off, and the file is closed by end_reply(), after the playback thread is done.
    """

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TalkError(f"cannot create --save-audio folder {folder}: {exc.strerror}") from exc
        self.folder = folder
        self._turn = 0
        self._file: sf.SoundFile | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def path(self, turn: int) -> Path:
        return self.folder / f"reply-{turn:03d}.wav"

    def prepare(self, sample_rate: int) -> None:
        pass

    def begin_reply(self, turn: int) -> None:
        with self._lock:
            self._turn, self._stopped = turn, False

    def write(self, audio: Audio) -> None:
        with self._lock:
            if self._stopped:
                return
            try:
                if self._file is None:
                    self._file = sf.SoundFile(
                        self.path(self._turn), "w", samplerate=audio.sample_rate, channels=1, subtype="PCM_16"
                    )
                self._file.write(resample(audio.samples, audio.sample_rate, self._file.samplerate))
                self._file.flush()
            except (sf.LibsndfileError, OSError) as exc:
                raise TalkError(f"cannot write {self.path(self._turn)}: {exc}: check --save-audio") from exc

    def end_reply(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                log.info("saved %s", self._file.name)
                self._file = None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True

    def close(self) -> None:
        self.end_reply()
