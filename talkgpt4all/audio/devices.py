"""Microphone and speakers through sounddevice (PortAudio)."""

from __future__ import annotations

import logging
import sys
import threading
from types import ModuleType
from typing import Any

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE, Audio, resample
from talkgpt4all.errors import DeviceError, MissingDependencyError

log = logging.getLogger("talkgpt4all")


def sounddevice() -> ModuleType:
    """The sounddevice module, or an error naming how to install PortAudio."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        if sys.platform.startswith("linux"):
            hint = "sudo apt-get install libportaudio2 (Debian/Ubuntu) or your distribution's portaudio"
        else:
            hint = "pip install --force-reinstall sounddevice"
        raise MissingDependencyError(f"the PortAudio library was not found ({exc}): {hint}") from exc
    return sd


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


class MicRecorder:
    """Push-to-talk recording from a microphone, mono float32 at 16 kHz."""

    def __init__(self, device: str | None = None) -> None:
        self._sd = sounddevice()
        self.device = find_device(device, "input")
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        self._rate = SAMPLE_RATE
        self._stream: Any = None
        self._lock = threading.Lock()

    def _callback(self, indata: np.ndarray, frames: int, _time: object, status: object) -> None:
        if status:
            log.debug("input status: %s", status)
        with self._lock:
            self._chunks.append(indata[:, 0].copy())
            self._frames += frames

    def start(self) -> None:
        self._chunks, self._frames = [], 0
        sd = self._sd
        try:
            self._stream = self._open(SAMPLE_RATE)
        except sd.PortAudioError:
            # Some hardware records only at its own rate: record at that and resample afterwards.
            rate = int(sd.query_devices(self.device, "input")["default_samplerate"])
            try:
                self._stream = self._open(rate)
            except sd.PortAudioError as exc:
                raise DeviceError(f"cannot open the microphone: {exc}: check --input-device") from exc
        self._stream.start()

    def _open(self, rate: int) -> Any:
        self._rate = rate
        return self._sd.InputStream(
            samplerate=rate, channels=1, dtype="float32", device=self.device, callback=self._callback
        )

    @property
    def elapsed(self) -> float:
        return self._frames / self._rate

    def stop(self) -> np.ndarray:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        with self._lock:
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return resample(samples, self._rate, SAMPLE_RATE)


class SpeakerSink:
    """Plays each piece of a reply on an output device, blocking until it has been heard."""

    def __init__(self, device: str | None = None) -> None:
        self._sd = sounddevice()
        self.device = find_device(device, "output")

    def begin_reply(self, turn: int) -> None:
        pass

    def write(self, audio: Audio) -> None:
        try:
            self._sd.play(audio.samples, audio.sample_rate, device=self.device, blocking=True)
        except self._sd.PortAudioError as exc:
            raise DeviceError(f"cannot play on the speaker: {exc}: check --output-device") from exc

    def end_reply(self) -> None:
        pass

    def stop(self) -> None:
        self._sd.stop()

    def close(self) -> None:
        self._sd.stop()
