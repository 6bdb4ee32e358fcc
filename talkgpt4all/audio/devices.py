"""Microphone and speakers through sounddevice (PortAudio)."""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, Audio, resample
from talkgpt4all.audio.echo import (
    NEAR_FLOOR,
    OVER_ECHO_PIECES,
    EchoCanceller,
    EchoPath,
    FarEnd,
    StreamClock,
    Timeline,
    near_db,
    rms,
)
from talkgpt4all.audio.watch import PulseWatch
from talkgpt4all.errors import DeviceError, MissingDependencyError
from talkgpt4all.status import METER_FLOOR_DB, level_db

log = logging.getLogger("talkgpt4all")


def _silence_alsa() -> None:
    """Keep ALSA's own messages ("underrun occurred", probe failures) out of the conversation on the
    terminal; PortAudio reports real failures to us as errors anyway."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("asound")
    if not name:
        return
    try:
        asound = ctypes.CDLL(name)
        handler_type = ctypes.CFUNCTYPE(
            None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
        )
        global _ALSA_HANDLER  # must outlive the call: ALSA keeps the pointer
        _ALSA_HANDLER = handler_type(lambda *_: None)
        asound.snd_lib_error_set_handler(_ALSA_HANDLER)
    except (OSError, AttributeError):
        pass


_ALSA_HANDLER: object = None


def sounddevice() -> ModuleType:
    """The sounddevice module, or an error naming how to install PortAudio."""
    if sys.platform.startswith("linux") and _ALSA_HANDLER is None:
        _silence_alsa()
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        if sys.platform.startswith("linux"):
            hint = "sudo apt-get install libportaudio2 (Debian/Ubuntu) or your distribution's portaudio"
        else:
            hint = "pip install --force-reinstall sounddevice"
        raise MissingDependencyError(f"the PortAudio library was not found ({exc}): {hint}") from exc
    module: ModuleType = sd
    return module


def list_devices() -> str:
    """The audio devices, one a line, marked > for default input and < for default output."""
    return str(sounddevice().query_devices())


def find_device(spec: str | None, kind: str) -> int | None:
    """The device index for a name substring or an index; None for the system default.

    kind is "input" or "output". Raises DeviceError when nothing fits.
    """
    sd = sounddevice()
    channels = f"max_{kind}_channels"
    try:
        devices = list(sd.query_devices())
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from exc
    usable = [(i, d) for i, d in enumerate(devices) if d[channels] > 0]
    what = "microphone" if kind == "input" else "speaker"
    alternatives = "use --input FILE or --text" if kind == "input" else "use --no-play or --save-audio DIR"
    if not usable:
        raise DeviceError(f"no {what} found: connect one, or {alternatives}")
    if spec is None:
        try:
            sd.query_devices(kind=kind)
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"no default {what}: pick one with --{kind}-device (see --list-devices), or {alternatives}"
            ) from exc
        return None
    if spec.strip().isdigit():
        index = int(spec)
        if any(i == index for i, _ in usable):
            return index
        raise DeviceError(f"device {index} is not a {what}: see --list-devices")
    matches = [i for i, d in usable if spec.lower() in d["name"].lower()]
    exact = [i for i, d in usable if spec.lower() == d["name"].lower()]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(repr(devices[i]["name"]) for i in matches)
        raise DeviceError(f"--{kind}-device {spec!r} matches several devices ({names}): be more specific")
    raise DeviceError(f"no {what} matches --{kind}-device {spec!r}: see --list-devices")


class _Microphone:
    """An input stream at 16 kHz mono float32 (or the device's own rate, resampled), calling
    self._take(chunk) from PortAudio's thread for each block."""

    blocksize = 0  # let PortAudio choose

    def __init__(self, device: str | None = None, watch: PulseWatch | None = None) -> None:
        self._sd = sounddevice()
        self.device = find_device(device, "input")
        self._rate = SAMPLE_RATE
        self._stream: Any = None
        self._clock = StreamClock()
        self.watch = watch  # where the sound server has the stream (see watch.py)

    def _take(self, chunk: np.ndarray, recorded: float) -> None:
        raise NotImplementedError

    def _callback(self, indata: np.ndarray, frames: int, when: Any, status: object) -> None:
        if status:
            log.debug("input status: %s", status)
        now = time.perf_counter()
        # When the block's first sample was recorded: PortAudio's ADC time, on our clock.
        lag = when.currentTime - when.inputBufferAdcTime if when.inputBufferAdcTime else 0.0
        if 0.0 < lag < 1.0:
            recorded = self._clock(when.inputBufferAdcTime, when.currentTime, now)
        else:  # a host that does not say: the stream's latency
            recorded = now - frames / self._rate - (self._stream.latency if self._stream is not None else 0.0)
        chunk = indata[:, 0].copy()
        chunk = chunk if self._rate == SAMPLE_RATE else resample(chunk, self._rate, SAMPLE_RATE)
        self._take(chunk, recorded)

    def _open(self) -> None:
        sd = self._sd
        self._clock = StreamClock()  # a new stream's times need their own offset
        try:
            self._stream = self._make_stream(SAMPLE_RATE)
        except sd.PortAudioError:
            # Some hardware records only at its own rate: record at that and resample.
            rate = int(sd.query_devices(self.device, "input")["default_samplerate"])
            try:
                self._stream = self._make_stream(rate)
            except sd.PortAudioError as exc:
                raise DeviceError(f"cannot open the microphone: {exc}: check --input-device") from exc
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            self.close()
            raise DeviceError(f"cannot start the microphone: {exc}: check --input-device") from exc
        if self.watch is not None:
            self.watch.opened("input")

    def lost(self) -> str | None:
        """Why the open stream no longer hears the microphone it should (it is gone, or the sound server
        moved the stream off it), or None."""
        if self._stream is not None and not self._stream.active:
            return "its stream stopped"
        return self.watch.lost("input") if self.watch is not None else None

    def available(self) -> bool:
        """Whether a stream opened now would hear the microphone it should (always, without a watch:
        then opening it is the test)."""
        return self.watch.available("input") if self.watch is not None else True

    def _make_stream(self, rate: int) -> Any:
        self._rate = rate
        blocksize = self.blocksize * rate // SAMPLE_RATE if self.blocksize else 0
        return self._sd.InputStream(
            samplerate=rate,
            channels=1,
            dtype="float32",
            device=self.device,
            blocksize=blocksize,
            callback=self._callback,
        )

    def close(self) -> None:
        """Stop and close the stream. A device already gone cannot be closed cleanly: that is said in
        the log, and what was recorded is kept."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
        except self._sd.PortAudioError as exc:
            log.debug("stopping the microphone: %s", exc)
        try:
            stream.close()
        except self._sd.PortAudioError as exc:
            log.debug("closing the microphone: %s", exc)


class MicRecorder(_Microphone):
    """Push-to-talk recording: everything between start() and stop()."""

    def __init__(self, device: str | None = None, watch: PulseWatch | None = None) -> None:
        super().__init__(device, watch)
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        self.level = METER_FLOOR_DB
        self._lock = threading.Lock()

    def _take(self, chunk: np.ndarray, recorded: float) -> None:
        self.level = level_db(chunk)  # for the status line's meter
        with self._lock:
            self._chunks.append(chunk)
            self._frames += len(chunk)

    def start(self) -> None:
        with self._lock:
            self._chunks, self._frames = [], 0
        self._open()

    @property
    def elapsed(self) -> float:
        return self._frames / SAMPLE_RATE

    def so_far(self) -> np.ndarray:
        with self._lock:
            return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def stop(self) -> np.ndarray:
        self.close()
        return self.so_far()


class MicStream(_Microphone):
    """An always-open microphone for hands-free mode, handing out CHUNK-sample pieces in order.

    `captured_at` is when the last piece handed out had been recorded (time.perf_counter() as its last
    block arrived): the clock that timings count from is the end of the user's speech, not the moment
    the program got round to it.

    With an echo canceller, the pieces are the microphone with the speakers' sound taken out, and
    `over_echo` says whether the last one holds more than echo (someone speaking over the speakers).
    """

    def __init__(
        self,
        device: str | None = None,
        chunk: int = 512,
        echo: EchoCanceller | None = None,
        watch: PulseWatch | None = None,
    ) -> None:
        super().__init__(device, watch)
        self.blocksize = chunk
        self._chunk = chunk
        self.echo = echo
        self._pieces: queue.Queue[tuple[np.ndarray, float, float, int]] = queue.Queue()
        self._jumps = 0  # of the microphone's timeline, as last seen
        self._pending = np.zeros(0, np.float32)
        self._pending_raw = np.zeros(0, np.float32)  # with echo cancelling: what was heard,
        self._pending_residual = np.zeros(0, np.float32)  # and what AEC3 left of it
        self._near: deque[float] = deque(maxlen=OVER_ECHO_PIECES)  # near_db of the last pieces
        self._path = EchoPath()
        self._pending_at = 0.0
        self.captured_at = 0.0
        self.recorded_at = 0.0  # when the last piece handed out began, on the speakers' clock
        self.over_echo = True
        self._timeline = Timeline(SAMPLE_RATE, "microphone")

    def _take(self, chunk: np.ndarray, recorded: float) -> None:
        stamp = self._timeline.stamp(recorded, len(chunk))
        self._pieces.put((chunk, time.perf_counter(), stamp, self._timeline.jumps))

    def start(self) -> None:
        self._open()

    def close(self) -> None:
        super().close()
        if self.echo is not None:
            log.info("%s", self.echo.summary())

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        """The next CHUNK samples, or None if none came within timeout."""
        while len(self._pending) < self._chunk:
            try:
                block, self._pending_at, recorded, jumps = self._pieces.get(timeout=timeout)
            except queue.Empty:
                return None
            if self.echo is not None:
                if jumps != self._jumps:
                    self._jumps = jumps
                    # Only a move while the speakers sound misleads the cancellers: in silence there is
                    # no echo to place, and the new stamps are right again.
                    if self.echo.far.sounding(recorded):
                        self.echo.relearn()
                heard, block, residual = self.echo.process(block, recorded)
                self._pending_raw = np.concatenate([self._pending_raw, heard])
                self._pending_residual = np.concatenate([self._pending_residual, residual])
            self._pending = np.concatenate([self._pending, block])
        piece, self._pending = self._pending[: self._chunk], self._pending[self._chunk :]
        self.captured_at = self._pending_at
        # The piece's first sample, counted back from the newest block's end (the canceller may hold
        # up to 10 ms back).
        self.recorded_at = self._pending_at - (len(self._pending) + self._chunk) / SAMPLE_RATE
        if self.echo is not None:
            heard, self._pending_raw = self._pending_raw[: self._chunk], self._pending_raw[self._chunk :]
            left = self._pending_residual[: self._chunk]
            self._pending_residual = self._pending_residual[self._chunk :]
            # The loudest of the last few pieces: AEC3 swallows parts of a voice over the echo. Where the
            # speakers do not reach the microphone, anything it hears is more than echo.
            self._near.append(near_db(heard, left))
            self._path.piece(heard, self.echo.far.sounding(self.recorded_at))
            no_echo = self._path.absent and rms(heard) >= NEAR_FLOOR
            self.over_echo = no_echo or max(self._near) >= self.echo.over_echo_db
        return piece


OUTPUT_LATENCY = 0.08  # seconds; PortAudio's "low" (9 ms on PulseAudio) underruns under load
STALL_SECONDS = 2.0  # the device took no audio for this long while some waited: it stopped playing
# With nothing to play for this long, the stream rests (it stops calling back: playing silence cost 2 %
# of a core, waiting all day for a wake word); the next sound starts it again, in a few ms.
REST_SECONDS = 5.0


class SpeakerSink:
    """Plays replies on an output device through one open stream, so sentences follow without gaps.

    write() returns once its audio has been handed to the device; stop() silences it at once, from
    any thread: the queued samples are dropped, and so is what the device and the sound server hold. A
    device that stops taking audio (unplugged, a sound server that hangs) is a DeviceError within
    STALL_SECONDS, never a write that waits forever.

    With a watch on the sound server, a speaker that goes away mid-reply (or that the server moved the
    stream off) stops the reply there, as a DeviceError. Until it is back, replies are not played (they
    are still shown); the first reply after it is back plays again, and notify says so.
    """

    def __init__(
        self,
        device: str | None = None,
        far: FarEnd | None = None,
        watch: PulseWatch | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self._sd = sounddevice()
        self.device = find_device(device, "output")
        self.watch = watch
        self.notify = notify or (lambda text: log.warning("%s", text))
        self._gone: str | None = None  # why the speaker went away, until it is back
        self._lock = threading.Lock()  # guards _queued, _stopped and _taken, shared with the callback
        self._streaming = threading.RLock()  # one thread at a time starts, aborts or closes the stream
        self._queued = np.zeros(0, np.float32)
        # With echo cancellation: the same audio at 16 kHz, handed to `far` as it plays.
        self.far = far
        self._queued16 = np.zeros(0, np.float32)
        self._played = self._played16 = 0  # of the queued audio, at both rates, since it was empty
        self._timeline: Timeline | None = None
        self._clock = StreamClock()
        self._stopped = False
        self._taken = 0  # frames the device has asked for so far: it is alive while this grows
        self._idle = 0  # frames played since the last sound
        self._resting = False  # the callback stopped the stream for want of anything to play
        self._drained = threading.Event()
        self._drained.set()
        self._stream: Any = None
        self._rate = 0

    def _callback(self, outdata: np.ndarray, frames: int, when: Any, status: object) -> None:
        with self._lock:
            n = min(frames, len(self._queued))
            outdata[:n, 0] = self._queued[:n]
            outdata[n:, 0] = 0.0
            self._queued = self._queued[n:]
            self._taken += frames
            if self.far is not None:
                self._report(n, frames, when)
            if not len(self._queued):
                self._drained.set()
            self._idle = 0 if n else self._idle + frames
            # Decided under the lock: a write that queues after this sees it, and starts the stream.
            self._resting = self._resting or self._idle >= REST_SECONDS * self._rate
            resting = self._resting
        if resting:
            raise self._sd.CallbackStop

    def _report(self, n: int, frames: int, when: Any) -> None:
        """Tell the echo canceller what this block plays, and when it reaches the speakers."""
        assert self.far is not None and self._timeline is not None
        now = time.perf_counter()
        lag = when.outputBufferDacTime - when.currentTime if when.outputBufferDacTime else -1.0
        if 0.0 <= lag < 1.0:
            plays = self._clock(when.outputBufferDacTime, when.currentTime, now)
        else:  # a host that does not say: the stream's latency
            plays = now + (self._stream.latency if self._stream is not None else OUTPUT_LATENCY)
        jumps = self._timeline.jumps
        start = self._timeline.stamp(plays, frames)
        # A stall while the speakers sound moves the echo as the cancellers see it; one in silence
        # (the stream idle between replies: PulseAudio's stamps leap ahead by seconds) does not.
        if self._timeline.jumps != jumps and self.far.sounding(start):
            self.far.jumps += 1
        m = round((self._played + n) * SAMPLE_RATE / self._rate) - self._played16
        piece, self._queued16 = self._queued16[:m], self._queued16[m:]
        self._played, self._played16 = self._played + n, self._played16 + len(piece)
        if not len(self._queued):
            self._queued16 = np.zeros(0, np.float32)
            self._played = self._played16 = 0
        self.far.played(start, piece)

    def _ensure_stream(self, rate: int) -> None:
        with self._streaming:
            if self._stream is not None and self._rate == rate:
                with self._lock:
                    resting, self._resting, self._idle = self._resting, False, 0
                if self._stream.active and not resting:
                    return
                # stop() aborted it, dropping what it held, or it rested. The same device and path: the
                # echo canceller's filter holds, and the new timeline is not a skip.
                if resting:
                    try:
                        self._stream.stop()  # PortAudio starts only a stopped stream
                    except self._sd.PortAudioError as exc:
                        log.debug("the resting speaker: %s", exc)
            else:
                self.close()
                try:
                    # The device holds OUTPUT_LATENCY of audio: enough that playback does not starve
                    # while the LLM keeps every core busy.
                    self._stream = self._sd.OutputStream(
                        samplerate=rate,
                        channels=1,
                        dtype="float32",
                        device=self.device,
                        callback=self._callback,
                        latency=OUTPUT_LATENCY,
                    )
                except self._sd.PortAudioError as exc:
                    raise DeviceError(f"cannot play on the speaker: {exc}: check --output-device") from exc
                self._rate = rate
            self._timeline = Timeline(rate, "speaker")
            self._clock = StreamClock()
            try:
                self._stream.start()
            except self._sd.PortAudioError as exc:
                self.close()
                raise DeviceError(f"cannot play on the speaker: {exc}: check --output-device") from exc
            if self.watch is not None:
                self.watch.opened("output")

    def prepare(self, sample_rate: int) -> None:
        # Open the stream now, and keep it: the first reply then starts without that delay, and a
        # device that cannot play is reported before the first turn.
        self._ensure_stream(sample_rate)

    def begin_reply(self, turn: int) -> None:
        # Before the reply is written: whether the speaker went away since the last one, or came back.
        why = self._lost()
        if why is not None and self._gone is None:
            self.close()
            self._gone = why
            self.notify(f"The speaker is gone ({why}): replies are shown, not spoken, until it is back.")
        elif self._gone is not None and self.watch is not None and self.watch.available("output"):
            self._gone = None
            self.notify("The speaker is back: replies are spoken again.")
        with self._lock:
            self._stopped = False
            self._queued = np.zeros(0, np.float32)  # nothing of an earlier reply plays in this one
            self._queued16 = np.zeros(0, np.float32)
            self._played = self._played16 = 0
            self._drained.set()

    def _lost(self) -> str | None:
        return self.watch.lost("output") if self.watch is not None else None

    def _went_away(self, why: str) -> DeviceError:
        """The speaker is gone: the reply stops where the user heard it."""
        self.stop()
        self.close()  # reopened once it is back
        self._gone = why
        return DeviceError(
            f"the speaker is gone ({why}): the reply stopped there; replies are shown, not spoken, until it "
            "is back"
        )

    def write(self, audio: Audio) -> None:
        if self._gone is not None:
            return  # shown, not spoken
        self._ensure_stream(audio.sample_rate)
        with self._lock:
            if self._stopped:
                return
            self._queued = np.concatenate([self._queued, audio.samples.astype(np.float32, copy=False)])
            if self.far is not None:
                at16 = resample(audio.samples, audio.sample_rate, SAMPLE_RATE)
                self._queued16 = np.concatenate([self._queued16, at16])
            self._drained.clear()
            taken, resting = self._taken, self._resting
        if resting:  # it rested just before the audio was queued
            self._ensure_stream(audio.sample_rate)
        since = time.monotonic()
        while not self._drained.wait(0.02):
            with self._lock:
                if self._stopped:
                    return
                progressed, taken = self._taken != taken, self._taken
            if progressed:
                since = time.monotonic()
            elif time.monotonic() - since > STALL_SECONDS:
                if self.watch is not None:
                    raise self._went_away(f"it took no audio for {STALL_SECONDS:.0f} s")
                self.stop()
                self.close()  # reopened at the next reply, in case the device comes back
                raise DeviceError(
                    f"the speaker stopped playing (took no audio for {STALL_SECONDS:.0f} s): "
                    "is it still connected? Check it, pick another with --output-device, or use --no-play"
                )
            why = self._lost()
            if why is not None:
                raise self._went_away(why)

    def cue(self, sound: Callable[[int], Audio]) -> None:
        """A short sound outside any reply (the wake chime), made at the stream's rate: queued without
        waiting for it to play, and not at all while a reply plays or the speaker is gone. From any
        thread."""
        if self._gone is not None:
            return
        try:
            self._ensure_stream(self._rate or SAMPLE_RATE)
        except DeviceError as exc:
            log.debug("no chime: %s", exc)
            return
        audio = sound(self._rate)
        with self._lock:
            if len(self._queued):
                return
            self._queued = audio.samples.astype(np.float32, copy=False)
            if self.far is not None:
                self._queued16 = resample(audio.samples, audio.sample_rate, SAMPLE_RATE)
                self._played = self._played16 = 0
            resting = self._resting
        if resting:
            self._ensure_stream(self._rate)

    def end_reply(self) -> None:
        # The stream stays open between replies (it plays silence): closing it could cut off what the
        # sound server still holds, and reopening costs time at the next reply.
        pass

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._queued = np.zeros(0, np.float32)
            self._queued16 = np.zeros(0, np.float32)
            self._played = self._played16 = 0
            self._drained.set()
        # What the device and the sound server already hold would play on (OUTPUT_LATENCY, and the
        # server's own buffer): drop it too, so that a user who talks over a reply hears it stop at
        # once. The stream starts again at the next write. (Outside self._lock: aborting waits for the
        # callback, which takes it.)
        with self._streaming:
            stream = self._stream
            if stream is not None and stream.active:
                try:
                    stream.abort()
                except self._sd.PortAudioError as exc:
                    log.debug("stopping the speaker: %s", exc)

    def close(self) -> None:
        with self._streaming:
            stream, self._stream = self._stream, None
            if stream is not None:
                try:
                    stream.stop()
                    stream.close()
                except self._sd.PortAudioError as exc:  # a device already gone cannot be stopped cleanly
                    log.debug("closing the speaker: %s", exc)
