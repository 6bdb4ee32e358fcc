"""The reply sinks under threads and faults: the speaker (against a stand-in PortAudio) and WAV files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FakeOutputStream
from talkgpt4all.audio import Audio
from talkgpt4all.audio import devices as devices_module
from talkgpt4all.audio.files import WavFolderSink
from talkgpt4all.errors import DeviceError


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


def test_an_idle_speaker_rests_its_stream_and_the_next_sound_plays_at_once(fake_portaudio, monkeypatch):
    """Waiting all day for a wake word, a stream playing silence cost 2 % of a core: after REST_SECONDS
    with nothing to play it stops calling back, and the next reply (or chime) starts it again."""
    monkeypatch.setattr(devices_module, "REST_SECONDS", 0.1)
    sink = devices_module.SpeakerSink()
    sink.prepare(16000)
    [stream] = FakeOutputStream.streams[-1:]
    deadline = time.monotonic() + 5
    while stream.active:
        assert time.monotonic() < deadline, "the idle stream never rested"
        time.sleep(0.01)
    calls = stream.calls
    time.sleep(0.1)
    assert stream.calls == calls  # resting: no callbacks
    sink.begin_reply(1)
    before = stream.heard()
    sink.write(tone(0.1))  # returns once the device has taken it all
    assert FakeOutputStream.streams[-1] is stream
    deadline = time.monotonic() + 5
    while stream.heard() < before + 10:
        assert time.monotonic() < deadline, "the reply was not heard"
        time.sleep(0.01)
    sink.close()


def test_a_sound_queued_as_the_stream_rests_is_still_played(fake_portaudio, monkeypatch):
    """The callback decides to rest, under the lock, just before a write queues its audio: the write
    sees it, and starts the stream again (it would otherwise wait for a stream that stopped)."""
    monkeypatch.setattr(devices_module, "STALL_SECONDS", 0.5)
    sink = devices_module.SpeakerSink()
    sink.prepare(16000)
    [stream] = FakeOutputStream.streams[-1:]
    opening = sink._ensure_stream
    rested = []

    def open_then_rest(rate: int) -> None:
        opening(rate)
        if rested:
            return
        rested.append(1)
        monkeypatch.setattr(devices_module, "REST_SECONDS", 0.0)  # the next callback rests
        deadline = time.monotonic() + 5
        while stream.active:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        monkeypatch.setattr(devices_module, "REST_SECONDS", 60.0)

    sink._ensure_stream = open_then_rest  # type: ignore[method-assign]
    sink.begin_reply(1)
    sink.write(tone(0.1))  # no DeviceError: played
    assert rested and stream.active and stream.heard()
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


# ------------------------------------------------------------------ the microphone


def test_push_to_talk_keeps_the_recording_when_the_microphone_fails_to_close(fake_portaudio):
    """A device that went away fails as its stream is stopped: what was recorded is still the turn.
    (Before, PortAudioError from close() lost the recording and ended the run as "unexpected".)"""
    from conftest import FakeInputStream

    recorder = devices_module.MicRecorder()
    recorder.start()
    deadline = time.monotonic() + 5
    while recorder.elapsed < 0.3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    FakeInputStream.close_error = fake_portaudio.PortAudioError("Unanticipated host error")
    audio = recorder.stop()
    assert len(audio) >= 0.3 * 16000 and float(np.abs(audio).max()) > 0.1


def test_a_microphone_that_cannot_start_is_a_device_error(fake_portaudio):
    from conftest import FakeInputStream

    FakeInputStream.start_error = fake_portaudio.PortAudioError("Device unavailable")
    with pytest.raises(DeviceError, match="Device unavailable"):
        devices_module.MicRecorder().start()
