"""Acoustic echo cancellation: the microphone hears the speakers, and this takes their sound back out,
so that a user can talk over a reply on laptop speakers (barge-in) without the reply hearing itself.

The reference is what the speaker stream handed to the device, at 16 kHz, stamped with when it plays
(FarEnd). Each microphone block is stamped with when it was recorded, and the cancellers are given the
reference for the same moments; the room's own delay, and what the stamps miss, is left to the
cancellers' filters.

Which canceller, measured on our own path (bench/echo.py; a piper reply through a synthetic room and
through PulseAudio with a real echo loop): WebRTC's AEC3 (`pywebrtc-audio`) removes the most echo
(27.5 dB against speex's 21.3 after the first second) and learns faster, but while the user talks over
a reply it swallows their first half second, so a barge-in was heard a second late and its first words
were lost ("Let's run."). speex's canceller (`pyaec`), with its residual-echo suppressor, keeps
the user's voice whole and lets a barge-in through within 0.2 s, but lets the echo through until it has
learnt the room (about a second), which the VAD takes for speech. So both run: speex's output is what is
listened to, and AEC3's, held against what the microphone heard, says whether there is more than echo
(EchoCanceller, near_db). livekit's AEC3 measured like pywebrtc-audio's, at twice the CPU and a far
larger install.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.errors import MissingDependencyError

log = logging.getLogger("talkgpt4all")

FRAME = SAMPLE_RATE // 100  # AEC3 works in 10 ms frames
KEEP_SECONDS = 6.0  # of reference kept: far more than any device's delay
ECHO_TAIL = 0.4  # seconds after the speakers fall silent that the room may still echo them


class FarEnd:
    """What the speakers played, at 16 kHz, by when it reached them (time.perf_counter() seconds).
    Written by the speaker's audio thread, read by the microphone's; silence is simply not written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: deque[tuple[float, np.ndarray]] = deque()
        self._sound: deque[list[float]] = deque()  # [start, end] of each stretch of audible sound
        self.jumps = 0  # times the speaker's stream skipped or stalled (its timeline re-anchored)

    def played(self, start: float, samples: np.ndarray) -> None:
        """samples (16 kHz) reach the speakers from time start."""
        if not len(samples):
            return
        with self._lock:
            self._blocks.append((start, samples))
            if np.abs(samples).max() > 1e-3:
                end = start + len(samples) / SAMPLE_RATE
                if self._sound and start <= self._sound[-1][1] + ECHO_TAIL:
                    self._sound[-1][1] = max(self._sound[-1][1], end)
                else:
                    self._sound.append([start, end])
            while self._blocks and self._blocks[0][0] < start - KEEP_SECONDS:
                self._blocks.popleft()
            while self._sound and self._sound[0][1] < start - KEEP_SECONDS:
                self._sound.popleft()

    def between(self, start: float, n: int) -> np.ndarray:
        """The n samples that played from time start (zeros where nothing did)."""
        out = np.zeros(n, np.float32)
        end = start + n / SAMPLE_RATE
        with self._lock:
            blocks = [b for b in self._blocks if b[0] < end and b[0] + len(b[1]) / SAMPLE_RATE > start]
        for at, samples in blocks:
            offset = round((at - start) * SAMPLE_RATE)
            lo, hi = max(0, offset), min(n, offset + len(samples))
            if hi > lo:
                out[lo:hi] = samples[lo - offset : hi - offset]
        return out

    def quiet(self, begin: float, end: float) -> bool:
        """Whether neither the speakers nor the room's echo of them may be heard from begin to end."""
        with self._lock:
            return not any(b <= end and e + ECHO_TAIL >= begin for b, e in self._sound)

    def sounding(self, at: float) -> bool:
        """Whether the speakers, or the room's echo of them, may be heard at time at."""
        with self._lock:
            return any(begin <= at <= end + ECHO_TAIL for begin, end in self._sound)


def _packages() -> tuple[Any, Any]:
    """pyaec (speex) and pywebrtc_audio (AEC3), or an error saying how to get them."""
    try:
        import pyaec
        from pywebrtc_audio import EchoCanceller as Aec3
    except (
        ImportError,
        AttributeError,
        OSError,
    ) as exc:  # pyaec fails with AttributeError without its library
        raise MissingDependencyError(
            f"echo cancellation needs the pyaec and pywebrtc-audio packages ({exc}): pip install pyaec "
            "pywebrtc-audio (or pass --no-aec, and use headphones to talk over a reply)"
        ) from exc
    if getattr(pyaec, "lib", None) is None:
        raise MissingDependencyError("pyaec has no echo canceller library for this machine: pass --no-aec")
    return pyaec, Aec3


class EchoCanceller:
    """Takes the speakers' sound out of microphone blocks, given when each block was recorded.

    Two cancellers run side by side on each 10 ms frame, because each fails where the other does not
    (measured on our path; see bench/echo.py and the module's docstring):
    - speex's (pyaec, FILTER taps, with its residual-echo suppressor) gives the audio that is listened
      to: it keeps the user's voice whole when they talk over a reply, but for the first second or so
      of the first reply, until it has learnt the echo path, it lets the echo through;
    - WebRTC's AEC3 (pywebrtc-audio) learns the path at once and leaves next to nothing of the echo, but
      it also swallows the user's first half second over a reply. Its output, against what the
      microphone heard, says whether someone is speaking over the echo: `near_db` for each frame.
    """

    FILTER = 4096  # taps: 256 ms of echo path after the stamps' alignment
    # Once the speakers and their echo have been silent this long (the filter's length, and a margin),
    # both cancellers rest, and the microphone passes through: idle, they cost 4 % of a core for
    # nothing. Their filters hold only silence by then, so they take up where they were.
    REST_AFTER = 0.3

    def __init__(self, far: FarEnd) -> None:
        pyaec, aec3 = _packages()
        self.far = far
        self._lib = pyaec.lib
        self._speex = pyaec.Aec(FRAME, self.FILTER, SAMPLE_RATE, True)
        self._aec3 = aec3(SAMPLE_RATE, 1, 0)
        self._carry = np.zeros(0, np.float32)
        self._carry_start = 0.0
        self.seconds = 0.0  # of audio processed
        self.cpu = 0.0  # seconds of CPU that took (thread time)
        # While the speakers sounded: seconds, and the energy heard before and after cancelling.
        self.echo_seconds = self.echo_in = self.echo_out = self.echo_residual = 0.0
        self.far_seconds = 0.0  # of the speakers' sound the cancellers have heard (since relearning)
        self.relearned = 0
        self._far_jumps = far.jumps

    @property
    def over_echo_db(self) -> float:
        """The near_db above which there is more than echo (none while the cancellers learn the room)."""
        return OVER_ECHO_DB if self.far_seconds >= LEARN_SECONDS else float("inf")

    def _speex_frame(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        import ctypes

        near16 = np.ascontiguousarray(np.clip(near, -1, 1) * 32767, dtype=np.int16)
        far16 = np.ascontiguousarray(np.clip(far, -1, 1) * 32767, dtype=np.int16)
        out16 = np.empty(FRAME, np.int16)
        pointer = ctypes.POINTER(ctypes.c_int16)
        self._lib.AecCancelEcho(
            self._speex._aec,
            near16.ctypes.data_as(pointer),
            far16.ctypes.data_as(pointer),
            out16.ctypes.data_as(pointer),
            FRAME,
        )
        return out16.astype(np.float32) / 32767

    def relearn(self) -> None:
        """A stream skipped or stalled (a busy machine, an underrun): the echo has moved in time as the
        cancellers see it, and they learn it again. Until then no barge-in is taken."""
        self.far_seconds = 0.0
        self.relearned += 1

    def process(self, block: np.ndarray, start: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block recorded from time start, with the echo removed: what was processed of what the
        microphone heard, speex's output for it, and AEC3's. Whole 10 ms frames are processed; a
        remainder waits for the next block, so the output may be up to 10 ms behind the input."""
        if self.far.jumps != self._far_jumps:
            self._far_jumps = self.far.jumps
            self.relearn()
        began = time.thread_time()
        if len(self._carry):
            start = self._carry_start
            block = np.concatenate([self._carry, block])
        whole = len(block) // FRAME * FRAME
        near, self._carry = block[:whole], block[whole:]
        self._carry_start = start + whole / SAMPLE_RATE
        self.seconds += whole / SAMPLE_RATE
        if not whole or self.far.quiet(start - self.REST_AFTER, start + whole / SAMPLE_RATE):
            return near, near, near
        clean = np.empty(whole, np.float32)
        residual = np.empty(whole, np.float32)
        far = self.far.between(start, whole)
        for i in range(0, whole, FRAME):
            frame, reference = near[i : i + FRAME], far[i : i + FRAME]
            clean[i : i + FRAME] = self._speex_frame(frame, reference)
            residual[i : i + FRAME] = self._aec3.process(frame, reference)
        if whole and np.abs(far).max() > 1e-3:
            self.far_seconds += whole / SAMPLE_RATE
        if whole and self.far.sounding(start):
            self.echo_seconds += whole / SAMPLE_RATE
            self.echo_in += float(np.dot(near, near))
            self.echo_out += float(np.dot(clean, clean))
            self.echo_residual += float(np.dot(residual, residual))
        self.cpu += time.thread_time() - began
        return near, clean, residual

    def summary(self) -> str:
        """What the canceller did, in one line (logged with --verbose when the microphone closes)."""
        cost = f"{1000 * self.cpu / self.seconds:.1f} ms of CPU a second" if self.seconds else "no audio"
        if not self.echo_seconds or not self.echo_out:
            return f"echo cancellation: {self.seconds:.0f} s of audio, no reply heard; {cost}"
        reduction = 10 * np.log10(max(self.echo_in, 1e-12) / self.echo_out)
        aec3 = 10 * np.log10(max(self.echo_in, 1e-12) / max(self.echo_residual, 1e-12))
        return (
            f"echo cancellation: {reduction:.1f} dB less sound while replies played, {aec3:.1f} dB by "
            f"AEC3's measure ({self.echo_seconds:.0f} s of {self.seconds:.0f} s); {cost}"
        )


NEAR_FLOOR = 0.003  # RMS below which the microphone heard nothing to speak of
# AEC3's output within this of what the microphone heard: someone speaks over the echo.
OVER_ECHO_DB = -12.0
# Until the cancellers have heard this much of the speakers, they are still learning the room: speex
# lets the echo through and AEC3 may leave as little as 1 dB of it, so nothing counts as more than
# echo. A barge-in is heard from then on: the first reply's first 1.5 s of sound cannot be interrupted.
LEARN_SECONDS = 1.5
# over_echo holds for this many 32 ms pieces after AEC3 last found more than echo: over a reply, it
# swallows parts of the user's voice, a few pieces at a time.
OVER_ECHO_PIECES = 5


class EchoPath:
    """Whether the microphone hears the speakers at all. With headphones, or speakers that do not reach
    the microphone, there is no echo to take out; AEC3, given the reply as its reference all the same,
    then swallows the user's voice over it (by 40 to 80 dB on the virtual devices), and a barge-in went
    unheard, or was heard a second late without its first words. While the speakers sound, a
    microphone at its floor most of the time says there is no echo path: then whatever it hears is
    more than echo."""

    WINDOW = 60  # pieces of 32 ms, while the speakers sound
    LEAST = 15  # pieces seen before anything is concluded
    QUIET = 0.75  # the share of them at the floor that means no echo reaches the microphone,
    HEARD = 0.4  # and, once concluded, the share under which it does after all (the user's own voice
    # over a reply makes the microphone heard too, and must not end the conclusion)

    def __init__(self) -> None:
        self._quiet: deque[bool] = deque(maxlen=self.WINDOW)
        self.absent = False

    def piece(self, heard: np.ndarray, sounding: bool) -> None:
        """What the microphone heard in one piece, and whether the speakers sounded then."""
        if not sounding:
            return
        self._quiet.append(rms(heard) < NEAR_FLOOR)
        share = sum(self._quiet) / len(self._quiet)
        if not self.absent and len(self._quiet) >= self.LEAST and share >= self.QUIET:
            self.absent = True
        elif self.absent and len(self._quiet) == self.WINDOW and share < self.HEARD:
            self.absent = False


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def near_db(heard: np.ndarray, residual: np.ndarray) -> float:
    """How much of what the microphone heard is left after AEC3, in dB (very low: it was all echo)."""
    level = rms(heard)
    if level < NEAR_FLOOR:
        return -99.0
    left = rms(residual)
    return 20 * float(np.log10(max(left, 1e-9) / level))


class StreamClock:
    """PortAudio's stream time on time.perf_counter()'s clock. The offset between the two is the smallest
    seen between a callback's start (perf_counter, taken in it) and PortAudio's stamp of that moment:
    a callback that a busy machine holds up (the GIL, the scheduler) gives a larger one, and does not
    move the stamps."""

    def __init__(self) -> None:
        self.offset = float("inf")

    def __call__(self, stream_time: float, current_time: float, now: float) -> float:
        """stream_time (e.g. an ADC or DAC time) on perf_counter's clock; current_time is PortAudio's
        time of this callback, now perf_counter's in it."""
        self.offset = min(self.offset, now - current_time)
        return stream_time + self.offset


class Timeline:
    """Continuous stamps for an audio stream's blocks: the time of each block's first sample is the
    stream's start plus the frames before it, re-anchored when the device's own stamps say the stream
    has moved: steadily (the median of the last STEADY blocks' deviations beyond DRIFT: one late or
    early report is jitter), or at once by more than STALL (a stall, an underrun).

    `jumps` counts the re-anchorings by more than MOVED: the echo has moved in time as the cancellers
    see it, and they learn it again. Smaller ones only follow the device: PulseAudio's reports settle
    by a block at a time (32 ms) while a stream starts and as another opens, which the cancellers'
    filters absorb; counted as jumps, they kept barge-in off for most of a reply."""

    DRIFT = 0.02
    STEADY = 8
    STALL = 0.25
    MOVED = 0.1

    def __init__(self, rate: int, name: str = "stream") -> None:
        self.rate, self.name = rate, name
        self._anchor: float | None = None
        self._frames = 0
        self._deviations: deque[float] = deque(maxlen=self.STEADY)
        self.jumps = 0  # re-anchorings by more than MOVED: the stream skipped or stalled
        self.adjusted = 0  # smaller ones

    def stamp(self, measured: float, frames: int) -> float:
        """measured: this block's first sample by the device's report; returns the continuous stamp."""
        if self._anchor is not None:
            predicted = self._anchor + self._frames / self.rate
            deviation = measured - predicted
            self._deviations.append(deviation)
            steady = (
                len(self._deviations) == self.STEADY and abs(statistics.median(self._deviations)) > self.DRIFT
            )
            if abs(deviation) <= self.STALL and not steady:
                self._frames += frames
                return predicted
            moved = abs(deviation) > self.MOVED
            self.jumps += moved
            self.adjusted += not moved
            log.debug("the %s's timeline moved by %+.0f ms", self.name, 1000 * deviation)
        self._anchor, self._frames = measured, frames
        self._deviations.clear()
        return measured
