"""Audio in and out: the shared sample format, input files, and the reply sinks.

Speech for Whisper is float32 mono at 16 kHz. Reply audio keeps the sample rate its synthesizer made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from talkgpt4all.errors import AudioInputError

SAMPLE_RATE = 16_000  # what Whisper expects
MIN_SPEECH_SECONDS = 0.3  # shorter than this is a click or a slip of the key, not a question
SILENCE_RMS = 0.003  # about -50 dBFS: below this over a whole recording, nobody spoke


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] at a sample rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def is_silent(samples: np.ndarray) -> bool:
    """Too short or too quiet to hold speech."""
    if len(samples) < MIN_SPEECH_SECONDS * SAMPLE_RATE:
        return True
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS


def load_audio(path: Path) -> np.ndarray:
    """Read wav, flac, mp3 (anything FFmpeg reads) at any rate and channel count as 16 kHz mono float32."""
    import av  # PyAV, which faster-whisper also uses: FFmpeg's decoders without an ffmpeg command

    if not path.is_file():
        raise AudioInputError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioInputError(f"input file is empty: {path}: record the question again")
    chunks = []
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioInputError(f"no audio in {path}: pass a wav, flac or mp3 file")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AudioInputError(
            f"cannot read {path} as audio ({reason}): pass a wav, flac or mp3 file"
        ) from exc
    if not chunks:
        raise AudioInputError(f"no audio samples in {path}: pass a wav, flac or mp3 file with speech")
    return np.concatenate(chunks).astype(np.float32, copy=False)


class AudioSink(Protocol):
    """Where reply audio goes: the speakers, a folder of WAV files, ..."""

    def prepare(self, sample_rate: int) -> None:
        """Get ready to take audio at this rate (open the device), so the first reply starts sooner."""

    def begin_reply(self, turn: int) -> None: ...

    def write(self, audio: Audio) -> None:
        """Take the next piece of the reply. May block while it plays."""

    def end_reply(self) -> None: ...

    def stop(self) -> None:
        """Cut off whatever is playing now (Ctrl-C during a reply)."""

    def close(self) -> None: ...


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 samples at `rate` resampled to `target`."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    import av

    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


class Recorder(Protocol):
    """A microphone that records between start() and stop()."""

    level: float  # of the last piece recorded, in dBFS: the status line's meter

    def start(self) -> None: ...

    def stop(self) -> np.ndarray:
        """Stop and return what was heard, as SAMPLE_RATE mono float32."""

    def so_far(self) -> np.ndarray:
        """What has been heard since start(), while recording goes on."""

    @property
    def elapsed(self) -> float:
        """Seconds recorded so far."""


@runtime_checkable
class Watchable(Protocol):
    """A device stream that can tell when it no longer reaches the device it should (unplugged, or
    moved by the sound server), and whether one opened now would (audio/watch.py)."""

    def lost(self) -> str | None:
        """Why the open stream no longer reaches its device, or None."""

    def available(self) -> bool:
        """Whether a stream opened now would reach the device it should."""


@runtime_checkable
class HearsOverEcho(Protocol):
    """An echo-cancelled microphone stream (audio/echo.py): when its last piece was recorded, on the
    speakers' clock, and whether it held more than the speakers' echo."""

    recorded_at: float
    over_echo: bool
