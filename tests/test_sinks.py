"""The reply sinks under threads and faults: the speaker (against a stand-in PortAudio) and WAV files."""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf

from talkgpt4all.audio import Audio
from talkgpt4all.audio import devices as devices_module
from talkgpt4all.audio.files import WavFolderSink
from talkgpt4all.errors import DeviceError


class FakeOutputStream:
    """PortAudio's output stream: a thread that calls back for 10 ms blocks, until it hangs or stops.
    The device holds 8 blocks (80 ms) before they are heard: stop() plays them out, abort() drops them."""

    hung = False  # set on the class: a device that stops calling back (unplugged, a stuck sound server)
    streams: ClassVar[list[FakeOutputStream]] = []

    def __init__(self, samplerate, channels, dtype, device, callback, latency) -> None:
        self.callback, self.rate = callback, samplerate
        self.played: list[np.ndarray] = []  # heard
        self.held: list[np.ndarray] = []  # in the device, not heard yet
        self._running = threading.Event()
        self._pumping = threading.Lock()
        FakeOutputStream.streams.append(self)

    @property
    def active(self) -> bool:
        return self._running.is_set()

    def start(self) -> None:
        self._running.set()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        frames = self.rate // 100
        while self._running.is_set():
            with self._pumping:
                if not FakeOutputStream.hung and self._running.is_set():
                    out = np.zeros((frames, 1), np.float32)
                    self.callback(out, frames, None, None)
                    self.held.append(out[:, 0].copy())
                    if len(self.held) > 8:
                        self.played.append(self.held.pop(0))
            time.sleep(0.01)

    def stop(self) -> None:
        self._running.clear()
        with self._pumping:
            self.played += self.held
            self.held = []

    def abort(self) -> None:
        self._running.clear()
        with self._pumping:
            self.held = []

    def close(self) -> None:
        pass


@pytest.fixture
def fake_portaudio(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    FakeOutputStream.hung = False
    sd = types.SimpleNamespace(
        OutputStream=FakeOutputStream,
        PortAudioError=type("PortAudioError", (Exception,), {}),
        query_devices=lambda *a, **k: [{"name": "fake", "max_output_channels": 2, "max_input_channels": 0}],
    )
    monkeypatch.setattr(devices_module, "sounddevice", lambda: sd)
    monkeypatch.setattr(devices_module, "find_device", lambda spec, kind: None)
    return sd


def tone(seconds: float, rate: int = 16000) -> Audio:
    return Audio(np.full(int(seconds * rate), 0.25, np.float32), rate)


def test_a_speaker_that_stops_taking_audio_is_an_error_not_a_hang(fake_portaudio, monkeypatch):
    monkeypatch.setattr(devices_module, "STALL_SECONDS", 0.3)
    sink = devices_module.SpeakerSink()
    sink.prepare(16000)
    sink.begin_reply(1)
    sink.write(tone(0.1))  # plays
    FakeOutputStream.hung = True
    started = time.monotonic()
    with pytest.raises(DeviceError, match="speaker stopped playing"):
        sink.write(tone(1.0))
    assert time.monotonic() - started < 5
    FakeOutputStream.hung = False
    sink.begin_reply(2)
    sink.write(tone(0.05))  # the next reply opens the device again and plays
    sink.close()


def test_a_reply_stopped_goes_silent_at_once_and_the_next_one_plays(fake_portaudio):
    """Stopped (the user talked over it, or pressed Enter): not even what the device already held is
    heard; the next reply plays on the same stream."""
    sink = devices_module.SpeakerSink()
    sink.prepare(16000)
    [stream] = FakeOutputStream.streams[-1:]
    sink.begin_reply(1)
    writer = threading.Thread(target=sink.write, args=(tone(2.0),))
    writer.start()
    deadline = time.monotonic() + 5
    while sum(float(np.abs(b).sum()) > 0 for b in stream.played) < 5:  # the reply is heard
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sink.stop()
    heard = sum(float(np.abs(b).sum()) > 0 for b in stream.played)
    writer.join(5)
    time.sleep(0.1)
    assert sum(float(np.abs(b).sum()) > 0 for b in stream.played) <= heard + 1  # nothing held played on
    sink.begin_reply(2)
    before = len(stream.played)
    sink.write(tone(0.2))
    time.sleep(0.15)
    assert any(float(np.abs(b).sum()) > 0 for b in stream.played[before:])  # the next reply is heard
    assert FakeOutputStream.streams[-1] is stream  # on the same stream, started again
    sink.close()


def test_a_new_reply_does_not_play_what_was_queued_for_the_last(fake_portaudio):
    sink = devices_module.SpeakerSink()
    sink._ensure_stream(16000)
    FakeOutputStream.hung = True  # hold everything in the queue
    with sink._lock:
        sink._queued = np.full(16000, 0.9, np.float32)  # left over from a reply that was cut off
    sink.begin_reply(2)
    assert len(sink._queued) == 0
    sink.close()


def test_a_stop_that_lands_while_write_opens_the_stream_queues_nothing(fake_portaudio):
    # stop() comes from another thread (Enter) at any moment: here, just after write() began and before
    # it queued the audio. The reply is over: nothing of it may be queued to play.
    sink = devices_module.SpeakerSink()
    opening = sink._ensure_stream

    def open_then_stop(rate: int) -> None:
        opening(rate)
        sink.stop()

    sink._ensure_stream = open_then_stop  # type: ignore[method-assign]
    sink.begin_reply(1)
    FakeOutputStream.hung = True
    sink.write(tone(1.0))
    assert len(sink._queued) == 0
    sink.close()


def test_stop_from_another_thread_never_closes_the_wav_under_a_writer(tmp_path: Path, monkeypatch):
    import talkgpt4all.audio.files as files

    sink = WavFolderSink(tmp_path)
    sink.begin_reply(1)
    sink.write(tone(0.5))
    in_write, go_on = threading.Event(), threading.Event()
    real_resample = files.resample

    def slow_resample(samples, rate, target):
        in_write.set()
        go_on.wait(5)
        return real_resample(samples, rate, target)

    monkeypatch.setattr(files, "resample", slow_resample)
    failures: list[BaseException] = []

    def playback() -> None:
        try:
            sink.write(tone(0.5))
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=playback)
    writer.start()
    assert in_write.wait(5)
    stopper = threading.Thread(target=sink.stop)  # Enter, while the playback thread writes
    stopper.start()
    time.sleep(0.1)
    go_on.set()
    writer.join(5)
    stopper.join(5)
    sink.write(tone(0.5))  # after the stop: not kept
    sink.end_reply()
    assert failures == []
    samples, rate = sf.read(tmp_path / "reply-001.wav")
    assert rate == 16000 and len(samples) == 16000  # both pieces written before the stop, whole
