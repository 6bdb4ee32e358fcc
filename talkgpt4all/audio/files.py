"""Reply audio written to WAV files: DIR/reply-001.wav, reply-002.wav, ..."""

from __future__ import annotations

import logging
from pathlib import Path

import soundfile as sf

from talkgpt4all.audio import Audio, resample
from talkgpt4all.errors import TalkError

log = logging.getLogger("talkgpt4all")


class WavFolderSink:
    """Writes each reply as one 16-bit PCM WAV file, sentence by sentence as they arrive."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TalkError(f"cannot create --save-audio folder {folder}: {exc.strerror}") from exc
        self.folder = folder
        self._turn = 0
        self._file: sf.SoundFile | None = None

    def path(self, turn: int) -> Path:
        return self.folder / f"reply-{turn:03d}.wav"

    def prepare(self, sample_rate: int) -> None:
        pass

    def begin_reply(self, turn: int) -> None:
        self._turn = turn

    def write(self, audio: Audio) -> None:
        if self._file is None:
            self._file = sf.SoundFile(
                self.path(self._turn), "w", samplerate=audio.sample_rate, channels=1, subtype="PCM_16"
            )
        samples = resample(audio.samples, audio.sample_rate, self._file.samplerate)
        self._file.write(samples)
        self._file.flush()

    def end_reply(self) -> None:
        if self._file is not None:
            self._file.close()
            log.info("saved %s", self._file.name)
            self._file = None

    def stop(self) -> None:
        self.end_reply()

    def close(self) -> None:
        self.end_reply()
