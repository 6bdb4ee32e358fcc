"""The real loop on real (virtual) audio devices: PulseAudio null sinks as microphone and speaker.

A person presses Enter, speaks into the microphone, and presses Enter again; the test does the same
with tmux send-keys and paplay, records the speaker with parec, and listens to it with Whisper.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, Ears, normalize, speak_to_file, wer
from talkgpt4all.audio import load_audio

pytestmark = pytest.mark.devices

NEEDED = ("pulseaudio", "pactl", "paplay", "parec", "tmux")


def _require_tools() -> None:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: sudo apt-get install pulseaudio pulseaudio-utils "
            "libasound2-plugins tmux (.ci/run installs them)"
        )


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private PulseAudio server with two null sinks: "mic" (its monitor is the microphone) and "spk"
    (the same set-up as bench/devices.py's)."""
    _require_tools()
    sys.path.insert(0, str(ROOT / "bench"))
    from devices import pulse_server

    with pulse_server(tmp_path_factory.mktemp("pulse")) as env:
        yield env


class Tmux:
    def __init__(self, env: dict[str, str], command: list[str]) -> None:
        self.env, self.name = env, f"talk{os.getpid()}"
        # The pane stays open after the program ends, so its last words can still be read.
        shell = " ".join(shlex.quote(c) for c in command) + "; echo EXITED $?; sleep 600"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", shell],
            env=env,
            check=True,
        )

    def screen(self) -> str:
        """The screen as the user reads it: a long line wraps anywhere, even inside "[interrupted]", so
        wrapped lines are joined (-J)."""
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-t", self.name, "-S", "-200"],
            env=self.env,
            capture_output=True,
            text=True,
        ).stdout

    def press_enter(self) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], env=self.env, check=True)

    def wait_for(self, text: str, timeout: float, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if screen.count(text) > after:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; the screen was:\n{self.screen()}")

    def wait_for_below(self, marker: str, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if marker in screen and text in screen.split(marker, 1)[1]:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear below {marker!r}; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], env=self.env, capture_output=True)


SOUND = 0.045  # of full scale: what was played is sound above this


class Speaker:
    """Records what the program plays on the virtual speaker. parec writes to a pipe read here as it
    comes, so nothing sits in a file buffer when recording stops."""

    def __init__(self, env: dict[str, str], path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [
                "parec",
                "--device=spk.monitor",
                "--format=s16le",
                "--rate=16000",
                "--channels=1",
                "--latency-msec=20",
            ],
            env=env,
            stdout=subprocess.PIPE,
        )
        self._data = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        while chunk := self.proc.stdout.read1(65536):
            self._data += chunk

    def wait_for_sound(self, timeout: float) -> None:
        """Until something louder than silence has been played."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = bytes(self._data[: len(self._data) // 2 * 2])
            if data and np.abs(np.frombuffer(data, dtype=np.int16)).max() > SOUND * 32768:
                return
            time.sleep(0.05)
        raise AssertionError("nothing was played on the speaker")

    def position(self) -> int:
        """Samples recorded so far: once what parec has written is read (a busy machine can keep this
        process from reading it for a while), so that the position is now's, not a moment ago's."""
        import array
        import fcntl
        import termios

        assert self.proc.stdout is not None
        waiting = array.array("i", [1])
        deadline = time.monotonic() + 1.0
        while waiting[0] and time.monotonic() < deadline:
            fcntl.ioctl(self.proc.stdout.fileno(), termios.FIONREAD, waiting)
            if waiting[0]:
                time.sleep(0.001)
        return len(self._data) // 2

    def heard(self) -> np.ndarray:
        time.sleep(0.2)  # what was just played reaches the monitor
        self.proc.terminate()
        self.proc.wait()
        self._reader.join(5)
        data = bytes(self._data[: len(self._data) // 2 * 2])
        self.path.write_bytes(data)
        return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768


CHAT_ON_DEVICES = [
    "--platform",
    "linux",
    "--input-device",
    "pulse",
    "--output-device",
    "pulse",
    "--temperature",
    "0",
    "--seed",
    "1",
]


def start_chat(pulse: dict[str, str], *args: str) -> tuple[Tmux, dict[str, str]]:
    env = {**pulse, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "spk", "TERM": "xterm"}
    return Tmux(env, [sys.executable, str(ROOT / "chat.py"), *CHAT_ON_DEVICES, *args]), env


def assert_heard_matches_printed(screen: str, samples: np.ndarray, ears: Ears) -> None:
    you = [line for line in screen.splitlines() if "You: " in line]
    ai = [line for line in screen.splitlines() if "AI: " in line]
    assert you and ai, screen
    assert wer("What is the capital of France?", you[0].split("You: ", 1)[1]) <= 0.2, screen
    printed = ai[0].split("AI: ", 1)[1].strip()
    assert np.abs(samples).max() > 0.05, "nothing was heard on the speaker"
    heard = ears.hear(samples)
    assert wer(printed, heard) <= 0.35, (printed, heard, screen)


def test_push_to_talk_on_virtual_devices(pulse: dict[str, str], tmp_path: Path, ears: Ears):
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    app, env = start_chat(pulse)
    try:
        app.wait_for("Ready", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        app.press_enter()  # start talking
        app.wait_for("Recording", timeout=10)
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        time.sleep(0.3)
        app.press_enter()  # done talking
        app.wait_for("AI: ", timeout=120)
        app.wait_for("Press Enter to talk", timeout=120, after=1)  # the prompt is back: reply played
        time.sleep(0.5)
        screen = app.screen()
        samples = speaker.heard()
    finally:
        app.kill()
    assert_heard_matches_printed(screen, samples, ears)


def test_hands_free_turn_on_virtual_devices(pulse: dict[str, str], tmp_path: Path, ears: Ears):
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    app, env = start_chat(pulse, "--vad")
    try:
        app.wait_for("Listening", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        # Nobody presses anything: speaking starts the turn and the pause after it ends it.
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        app.wait_for("AI: ", timeout=60)
        # Listening again (below the reply): the reply has been played.
        app.wait_for_below("AI: ", "Listening", timeout=120)
        time.sleep(0.5)
        screen = app.screen()
        samples = speaker.heard()
    finally:
        app.kill()
    assert_heard_matches_printed(screen, samples, ears)


def test_enter_stops_a_long_reply(pulse: dict[str, str], tmp_path: Path):
    app, env = start_chat(
        pulse,
        "--max-tokens",
        "400",
        "--system-prompt",
        "You are a storyteller. Tell very long stories of many sentences.",
    )
    try:
        app.wait_for("Ready", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        subprocess.run(
            ["tmux", "send-keys", "-t", app.name, "Tell me a long story about a dragon.", "Enter"],
            env=env,
            check=True,
        )
        app.wait_for("AI: ", timeout=60)
        speaker.wait_for_sound(timeout=30)  # it is speaking
        app.press_enter()
        screen = app.wait_for("[interrupted]", timeout=5)
        app.wait_for("Press Enter to talk", timeout=10, after=1)
        time.sleep(1.0)
        samples = speaker.heard()
    finally:
        app.kill()
    assert "You: Tell me a long story about a dragon." in screen
    # Sound was playing, and it stopped: the last second recorded is silent.
    assert np.abs(samples).max() > SOUND, (len(samples) / 16000, screen)  # as wait_for_sound heard it
    assert np.abs(samples[-16000:]).max() < 0.01


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, None), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_a_signal_during_a_spoken_reply_silences_the_speaker_at_once(
    pulse: dict[str, str], tmp_path: Path, sig: signal.Signals, code: int | None
):
    """Ctrl-C, a polite kill or a closed terminal while a long reply is spoken (push-to-talk, a typed
    request, espeak-ng): the speaker, recorded, is silent within 0.2 s of the signal, and the history
    keeps what was heard. Ctrl-C ends only the reply; SIGTERM and SIGHUP end the program. (Before, the
    voice's threads were joined without being stopped: the reply played on for seconds.)"""
    transcript, out, err = tmp_path / "turns.jsonl", tmp_path / "out.txt", tmp_path / "err.txt"
    # PYTHONFAULTHANDLER: should it hang, SIGABRT makes it print every thread's stack (into err.txt).
    env = {**pulse, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "spk", "PYTHONUNBUFFERED": "1",
           "PYTHONFAULTHANDLER": "1"}  # fmt: skip
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "chat.py"), *CHAT_ON_DEVICES, "--tts", "espeak", "--max-tokens",
             "400", "--transcript", str(transcript), *STORY],
            stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=env, text=True,
        )  # fmt: skip
    assert proc.stdin is not None

    def stuck(what: str) -> str:
        proc.send_signal(signal.SIGABRT)
        proc.wait(10)
        return f"{what}; its threads:\n{err.read_text()[-6000:]}"

    try:
        deadline = time.monotonic() + 120
        while "Ready." not in err.read_text():  # the models are loaded
            assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
            time.sleep(0.1)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        proc.stdin.write("Tell me a long story about a dragon.\n")
        proc.stdin.flush()
        speaker.wait_for_sound(timeout=60)
        time.sleep(1.5)  # well into the reply
        at_signal = speaker.position()
        proc.send_signal(sig)
        if code is None:
            deadline = time.monotonic() + 10  # the reply ends; the program goes on
            while not (transcript.exists() and transcript.read_text().strip()):
                assert time.monotonic() < deadline, stuck("the turn was not over 10 s after Ctrl-C")
                time.sleep(0.05)
            proc.stdin.close()  # then Ctrl-D quits
        try:
            returned = proc.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(stuck(f"still running 20 s after {sig.name}")) from None
        assert returned == (code or 0), err.read_text()
        samples = speaker.heard()
    finally:
        if proc.poll() is None:
            proc.kill()
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    assert len(loud) and loud[0] < at_signal, "nothing was heard before the signal"
    after = (loud[-1] - at_signal) / 16000
    print(f"{sig.name}: the last sound {after * 1000:.0f} ms after the signal")  # (shown with -s)
    assert after <= 0.2, f"the reply was heard {after:.2f} s after the signal"
    [turn] = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert turn["interrupted"] is True and turn["reply"], turn  # what was heard, marked as cut off


def test_the_level_meter_moves_with_sound_and_rests_in_silence(pulse: dict[str, str], tmp_path: Path):
    """While it listens, the status line shows what the microphone hears: a hum played into it fills
    the meter, and silence empties it again."""
    import soundfile as sf

    hum = tmp_path / "hum.wav"
    t = np.arange(3 * 16000) / 16000
    sf.write(hum, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)  # not speech: no turn
    app, env = start_chat(pulse, "--vad")

    def status_line() -> str:
        lines = [line for line in app.screen().splitlines() if "Listening" in line or "Hearing" in line]
        return lines[-1] if lines else ""

    def wait_line(full: bool, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = status_line()
            if line and ("█" in line) == full:
                return line
            time.sleep(0.1)
        raise AssertionError(f"the meter never {'filled' if full else 'emptied'}:\n{app.screen()}")

    try:
        app.wait_for("Listening", timeout=120)
        resting = wait_line(False, 10)
        player = subprocess.Popen(["paplay", "--device=mic", str(hum)], env=env)
        moving = wait_line(True, 10)
        player.wait(10)
        rested = wait_line(False, 10)
    finally:
        app.kill()
    assert "▕" in resting and "▏" in resting, resting  # the meter is there, empty
    assert moving.count("█") >= 4, moving
    assert "▕" in rested, rested


def paused_sentence(voice: str, first: str, second: str, pause: float, folder: Path) -> Path:
    """The two halves, each spoken alone (so the first ends as a sentence would), joined by a pause."""
    from test_turn import piper_says, voiced

    if voice == "piper":
        a, b = piper_says(first, folder / "a.wav"), piper_says(second, folder / "b.wav")
    else:
        a = voiced(load_audio(speak_to_file(first, folder / "a.wav")))
        b = voiced(load_audio(speak_to_file(second, folder / "b.wav")))
    joined = np.concatenate([np.zeros(8000, np.float32), a, np.zeros(int(pause * 16000), np.float32), b])
    return write_wav(folder / "paused.wav", joined)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16 kHz float samples as a 16-bit PCM WAV file, for paplay."""
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


@pytest.mark.parametrize("voice", ["espeak", "piper"])
def test_a_sentence_with_a_pause_in_the_middle_is_one_turn_answered_after_its_end(
    pulse: dict[str, str], tmp_path: Path, voice: str
):
    """ "What is the best way to" ... 0.6 s ... "learn the violin?" with the default settings: one turn,
    the whole sentence, and nothing from the speaker until it is over (before: two turns, the first
    answered).

    Not "Tell me about the": Whisper writes it as "Tell me about it." (or "that."), a whole sentence,
    and whether the user goes on before the reply sounds (one turn) or after (a barge-in: two) is then a
    race between the pause and the time to the first sound. bench/devices.py --paused counts those."""
    sentence = paused_sentence(voice, "What is the best way to", "learn the violin?", 0.6, tmp_path)
    log = tmp_path / "turns.jsonl"
    app, env = start_chat(pulse, "--vad", "--transcript", str(log), "--max-tokens", "30")
    try:
        app.wait_for("Listening", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        time.sleep(0.5)
        started = speaker.position()
        subprocess.run(["paplay", "--device=mic", str(sentence)], env=env, check=True)
        ended = speaker.position()
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline, app.screen()
            time.sleep(0.1)
        time.sleep(3)  # a second turn, had the sentence been cut in two, would be on its way by now
        screen = app.screen()
    finally:
        app.kill()
    played = speaker.heard()
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(turns) == 1, (turns, screen)
    # Both halves, as one: the first as said, and the second after it (Whisper hears espeak's and
    # piper's "violin" as "mile in", "myelin", and piper's "learn" as "burn").
    words = normalize(turns[0]["user"]).split()
    assert words[:6] == "what is the best way to".split() and len(words) >= 8, (turns, screen)
    # Silent while the sentence was said (but for the last 0.1 s: paplay returns once it has drained).
    assert np.abs(played[started : ended - 1600]).max() < 0.02, screen
    assert np.abs(played[ended:]).max() > 0.05, "the reply was never heard"


def piper_wav(text: str, folder: Path, name: str) -> Path:
    """Joe (piper) says it, with half a second of silence before, as a 16 kHz WAV for paplay."""
    from test_turn import piper_says

    samples = np.concatenate([np.zeros(8000, np.float32), piper_says(text, folder / f"{name}-22k.wav")])
    return write_wav(folder / f"{name}.wav", samples)


def test_with_a_wake_word_only_what_follows_it_is_answered_and_follow_ups_for_a_while(
    pulse: dict[str, str], tmp_path: Path
):
    """--wake hey_jarvis, as a user lives it: a question without the wake word gets nothing (no sound,
    no turn); "Hey Jarvis, ..." in one breath is answered (its words without the wake word); a follow-up
    inside the window needs none; one after the window gets nothing again."""
    pytest.importorskip("pymicro_wakeword", reason="needs the wake extra: pip install -e '.[wake]'")
    said = {
        name: piper_wav(text, tmp_path, name)
        for name, text in {
            "plain": "What is the capital of France?",
            "woken": "Hey Jarvis, what is the capital of France?",
            "follow-up": "And what is the capital of Germany?",
            "late": "What is the capital of Italy?",
        }.items()
    }
    log = tmp_path / "turns.jsonl"
    args = (
        "--vad",
        "--wake",
        "hey_jarvis",
        "--follow-up",
        "4",
        "--transcript",
        str(log),
        "--max-tokens",
        "20",
    )
    app, env = start_chat(pulse, *args)

    def say(name: str) -> None:
        subprocess.run(["paplay", "--device=mic", str(said[name])], env=env, check=True)

    try:
        app.wait_for("Say 'hey jarvis'", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        say("plain")
        time.sleep(3)  # had it been taken as a turn, it would be answered by now
        quiet = app.screen()
        silent_until = speaker.position()
        say("woken")
        app.wait_for("AI: ", timeout=60)
        app.wait_for_below("AI: ", "Listening (follow-up", timeout=60)  # the reply has played
        say("follow-up")
        app.wait_for("AI: ", timeout=60, after=1)
        screen = app.wait_for("Say 'hey jarvis'", timeout=60, after=1)  # the window closed
        say("late")
        time.sleep(3)
        screen = app.screen()
    finally:
        app.kill()
    played = speaker.heard()
    assert "You: " not in quiet, quiet
    assert np.abs(played[:silent_until]).max() < 0.02, "something played for speech without the wake word"
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    users = [normalize(turn["user"]) for turn in turns]
    assert len(turns) == 2, (users, screen)
    # The wake word taken out (Whisper base hears piper's "France" as "friends" at times).
    assert users[0].split()[:5] == "what is the capital of".split() and "jarvis" not in users[0], users
    assert "germany" in users[1], (users, screen)
    assert screen.count("You: ") == 2, screen


STORY = ("--system-prompt", "You are a storyteller. Tell very long stories of many sentences.")


def test_barge_in_speaking_during_a_reply_interrupts_it(pulse: dict[str, str], tmp_path: Path):
    story = speak_to_file("Tell me a long story about a dragon.", tmp_path / "story.wav")
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    app, env = start_chat(pulse, "--vad", "--barge-in", "--max-tokens", "400", *STORY)
    try:
        app.wait_for("Listening", timeout=120)
        subprocess.run(["paplay", "--device=mic", str(story)], env=env, check=True)
        app.wait_for("AI: ", timeout=60)
        time.sleep(1.5)  # the story is being told
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        screen = app.wait_for("[interrupted]", timeout=10)
        screen = app.wait_for("You: ", timeout=60, after=1)  # the interruption became the next turn
    finally:
        app.kill()
    turns = [line.split("You: ", 1)[1] for line in screen.splitlines() if "You: " in line]
    assert wer("What is the capital of France?", turns[1]) <= 0.2, screen


def test_without_barge_in_speech_during_a_reply_is_ignored(pulse: dict[str, str], tmp_path: Path):
    story = speak_to_file("Tell me a story about a dragon.", tmp_path / "story.wav")
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    app, env = start_chat(pulse, "--vad", "--no-barge-in", "--max-tokens", "40", *STORY)
    try:
        app.wait_for("Listening", timeout=120)
        speaker = Speaker(env, tmp_path / "speaker.raw")
        subprocess.run(["paplay", "--device=mic", str(story)], env=env, check=True)
        # While it speaks (before its first sound, speech would be the user going on: one turn).
        speaker.wait_for_sound(timeout=60)
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        screen = app.wait_for_below("AI: ", "Listening", timeout=120)
        time.sleep(2)
        screen = app.screen()
    finally:
        app.kill()
    speaker.heard()
    assert "[interrupted]" not in screen
    assert screen.count("You: ") == 1, screen  # what was said over the reply did not become a turn


@pytest.mark.slow
def test_hands_free_ttfa_is_measured_from_the_device_recordings():
    """bench/devices.py plays questions into the virtual microphone and records both devices; TTFA is
    end of question (microphone) to first reply sound (speaker). Only that it is measured, and in the
    right order, is checked here: the figure itself belongs to the benchmark."""
    _require_tools()
    pytest.importorskip("piper", reason="install the bench extra: pip install -e '.[bench]' (.ci/run does)")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "devices.py"),
            "--rows",
            "default",
            "--paused",
            "--limit",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    row = figures["rows"]["default"]
    assert row["measured"] == len(row["turns"]) == 2, figures
    for turn in row["turns"]:
        assert turn["question_end"] < turn["reply_start"], turn
        assert 0 < turn["ttfa_device"] < 30, turn
        assert turn["program"]["first_audio"] is not None, turn
    assert 0 < row["ttfa_device_p50"] <= row["ttfa_device_p95"]
    # The paused sentences: each is judged cut early or not, from what the program heard first.
    paused = figures["rows"]["paused"]
    assert paused["paused"] == len(paused["turns"]) == 2 and 0 <= paused["cut_early"] <= 2, paused
    # The measuring tool itself: a beep sent to both devices at once lands at the same moment in both
    # recordings, to within the recordings' block size, so the two clocks can be compared.
    assert all(a is not None and abs(a) < 100 for a in figures["alignment_ms"]), figures["alignment_ms"]


# ------------------------------------------------------------------------------------- talking over it
# The speaker's sound is fed back into the microphone (PulseAudio's module-loopback, 60 ms late and
# about 9 dB down: bench/echo.py's echo_devices), so the assistant hears itself as on laptop speakers.


@pytest.fixture
def echo_bench(tmp_path: Path) -> Iterator[tuple[object, dict[str, str]]]:
    _require_tools()
    pytest.importorskip("pywebrtc_audio", reason="pip install -r requirements.txt installs it")
    sys.path.insert(0, str(ROOT / "bench"))
    import echo

    with echo.echo_devices(tmp_path / "pulse") as env:
        yield echo, env


@pytest.mark.slow
def test_with_echo_cancelling_a_long_reply_on_speakers_plays_to_the_end(echo_bench, tmp_path: Path):
    """Hands-free, barge-in on (the default with the canceller): the reply hears itself all along, and
    goes on to its end for more than 30 s without taking itself for the user."""
    echo, env = echo_bench
    figures = echo.long_replies(env, tmp_path, 1, ["--max-tokens", "320"])
    assert figures["interrupted"] == 0 and figures["turns"] == 1, figures
    assert figures["reply_seconds"] >= 30, figures
    assert "dB less sound while replies played" in (figures["program"] or ""), figures


@pytest.mark.slow
def test_a_question_over_a_reply_on_speakers_interrupts_it_and_is_the_next_turn(echo_bench, tmp_path: Path):
    """Two seconds into a reply, the user asks a question over it: the reply stops (how soon, in audio
    time from the question's first sound, is the benchmark's figure) and the question, heard through
    the echo, is the next turn."""
    echo, env = echo_bench
    figures = echo.barge_ins(env, tmp_path, 1, [])
    assert figures["missed"] == 0 and len(figures["reactions"]) == 1, figures
    assert 0 < figures["reactions"][0] < 1.2, figures  # the benchmark reports how soon, against 0.3 s
    assert wer(echo.QUESTION, figures["heard"][0]) <= 0.2, figures


@pytest.mark.slow
def test_without_echo_cancelling_a_reply_on_speakers_interrupts_itself(echo_bench, tmp_path: Path):
    """The same echo with --no-aec and barge-in: the reply takes its own voice for the user. This is
    what the canceller prevents, and the proof that the echo in these tests is real."""
    echo, env = echo_bench
    request = speak_to_file(echo.STORY_REQUEST, tmp_path / "story.wav")
    chat = echo.Chat(env, tmp_path, "--no-aec", "--barge-in", "--max-tokens", "220")
    try:
        chat.play(request)
        first = chat.wait_turns(2)[0]  # the reply, and the turn its own echo became
    finally:
        stderr = chat.close()
    assert first["interrupted"] is True, first
    assert "echo cancellation:" not in stderr  # no canceller ran


# ------------------------------------------------------------------------------ devices that come and go
# A sink's module unloaded is a device unplugged: PulseAudio moves our stream to whatever is left (here
# the other null sink, or its monitor), and says nothing to PortAudio. Loaded again, it is plugged back.


@pytest.fixture
def own_pulse(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A PulseAudio server of the test's own, with "mic" and "spk", so unplugging them harms no other."""
    _require_tools()
    sys.path.insert(0, str(ROOT / "bench"))
    from devices import pulse_server

    with pulse_server(tmp_path / "pulse") as env:
        yield env


def unplug(env: dict[str, str], sink: str) -> None:
    modules = subprocess.run(
        ["pactl", "list", "short", "modules"], env=env, capture_output=True, text=True, check=True
    ).stdout
    [index] = [line.split("\t")[0] for line in modules.splitlines() if f"sink_name={sink}" in line]
    subprocess.run(["pactl", "unload-module", index], env=env, check=True)


def plug(env: dict[str, str], sink: str) -> None:
    subprocess.run(
        ["pactl", "load-module", "module-null-sink", f"sink_name={sink}"],
        env=env,
        check=True,
        capture_output=True,
    )


def quit_cleanly(app: Tmux) -> str:
    """Ctrl-D: the program ends at once, with exit code 0 (no thread of the lost device holds it)."""
    subprocess.run(["tmux", "send-keys", "-t", app.name, "C-d"], env=app.env, check=True)
    return app.wait_for("EXITED 0", timeout=20)


@pytest.mark.slow
def test_a_microphone_unplugged_mid_session_is_waited_for_and_heard_again(own_pulse, tmp_path: Path):
    question = speak_to_file("What is the capital of France?", tmp_path / "q.wav")
    app, env = start_chat(own_pulse, "--vad")
    try:
        app.wait_for("Listening", timeout=120)
        unplug(env, "mic")
        app.wait_for("The microphone is gone (mic.monitor is gone): waiting for it to come back…", timeout=10)
        # Meanwhile the stream is closed, not left on the speaker's monitor, where it would hear replies.
        plug(env, "mic")
        app.wait_for("The microphone is back: listening again.", timeout=10)
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        screen = app.wait_for("AI: ", timeout=60)
        you = [line for line in screen.splitlines() if "You: " in line]
        assert len(you) == 1 and "capital" in you[0].lower(), screen
        app.wait_for_below("AI: ", "Listening", timeout=120)
        screen = quit_cleanly(app)
    finally:
        app.kill()
    assert screen.count("The microphone is gone") == 1 and "Traceback" not in screen, screen


@pytest.mark.slow
def test_a_speaker_unplugged_mid_reply_stops_it_there_and_plays_again_once_back(own_pulse, tmp_path: Path):
    question = speak_to_file("Tell me a long story about a dragon.", tmp_path / "q.wav")
    transcript = tmp_path / "turns.jsonl"
    app, env = start_chat(
        own_pulse,
        "--vad",
        "--no-aec",
        "--language",
        "en",
        "--max-tokens",
        "300",
        "--transcript",
        str(transcript),
        *STORY,
    )
    try:
        app.wait_for("Listening", timeout=120)
        speaker = Speaker(env, tmp_path / "before.raw")
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        speaker.wait_for_sound(timeout=60)
        unplug(env, "spk")
        app.wait_for("the speaker is gone", timeout=15)
        app.wait_for_below("the speaker is gone", "Listening", timeout=120)
        plug(env, "spk")
        speaker = Speaker(env, tmp_path / "after.raw")
        subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True)
        speaker.wait_for_sound(timeout=60)  # the next reply is heard
        # Said before the next reply is written, not in the middle of it.
        app.wait_for_below("The speaker is back: replies are spoken again.", "AI: ", timeout=10)
        screen = quit_cleanly(app)
    finally:
        app.kill()
    assert "Traceback" not in screen, screen
    first = json.loads(transcript.read_text().splitlines()[0])
    # The reply as far as it was heard: cut off, with the reason, and not empty.
    assert "speaker is gone" in first.get("error", "") and first["reply"], first


@pytest.mark.slow
def test_with_no_microphone_named_the_new_default_is_taken_but_never_the_speakers_monitor(own_pulse):
    """No PULSE_SOURCE: the headset unplugged, the laptop's microphone (the server's new default) is
    used, and the user is told. With only the speakers' monitors left, the program waits rather than
    listen to its own replies, and takes the next microphone that comes."""

    def pactl(*args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env=own_pulse, capture_output=True, text=True, check=True
        ).stdout

    pactl("load-module", "module-null-source", "source_name=laptop")
    pactl("load-module", "module-null-source", "source_name=headset")
    pactl("set-default-source", "headset")

    def unplug_source(name: str) -> None:
        modules = pactl("list", "short", "modules").splitlines()
        [index] = [line.split("\t")[0] for line in modules if f"source_name={name}" in line]
        pactl("unload-module", index)

    env = {**own_pulse, "PULSE_SINK": "spk", "TERM": "xterm"}
    app = Tmux(env, [sys.executable, str(ROOT / "chat.py"), *CHAT_ON_DEVICES, "--vad", "--no-aec"])
    try:
        app.wait_for("Listening", timeout=120)
        unplug_source("headset")
        app.wait_for("The microphone headset is gone: now using laptop.", timeout=10)
        unplug_source("laptop")  # only the sinks' monitors are left
        app.wait_for("The microphone is gone (laptop is gone): waiting for it to come back…", timeout=10)
        pactl("load-module", "module-null-source", "source_name=usb")
        pactl("set-default-source", "usb")
        app.wait_for("The microphone is back: listening again.", timeout=10)
        outputs = pactl("list", "source-outputs")
        assert "ALSA plug-in" in outputs and f"Source: {source_index(pactl, 'usb')}" in outputs, outputs
        screen = quit_cleanly(app)
    finally:
        app.kill()
    assert "Traceback" not in screen, screen


def source_index(pactl, name: str) -> str:
    for line in pactl("list", "short", "sources").splitlines():
        index, source = line.split("\t")[:2]
        if source == name:
            return index
    raise AssertionError(f"no source {name}")


class TimerModel:
    """A stand-in OpenAI server whose model sets a 3 s timer when asked for one, then answers from the
    tool's result: with a short line, or, when a story was asked for too, with a story long enough to be
    still playing when the timer is due."""

    STORY = (
        "Once upon a time a small dragon lived in a cave by the sea. Every morning she flew over the "
        "water to watch the fishing boats. One day a storm came, and a boat was lost in the waves. The "
        "dragon dived into the storm and carried the boat home on her back. The fishermen thanked her, "
        "and from then on they left her a basket of fish every evening."
    )

    def __init__(self) -> None:
        import http.server

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send("application/json", json.dumps({"data": [{"id": "stand-in"}]}).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = body["messages"]
                asked = next(m["content"] for m in reversed(messages) if m["role"] == "user").lower()
                if messages[-1]["role"] == "tool":
                    text = "The timer is set. " + (owner.STORY if "story" in asked else "")
                    chunks = [{"delta": {"content": word + " "}} for word in text.split()]
                elif "timer" in asked and body.get("tools"):
                    arguments = json.dumps({"seconds": 3, "message": "Time to check the oven."})
                    call = {"index": 0, "id": "call_t", "type": "function",
                            "function": {"name": "set_timer", "arguments": arguments}}  # fmt: skip
                    chunks = [{"delta": {"tool_calls": [call]}}]
                else:
                    chunks = [{"delta": {"content": "Hello."}}]
                events = b""
                for i, chunk in enumerate(chunks):
                    finish = None if i < len(chunks) - 1 else "stop"
                    event = {"choices": [{"index": 0, **chunk, "finish_reason": finish}]}
                    events += f"data: {json.dumps(event)}\n\n".encode()
                self._send("text/event-stream", events + b"data: [DONE]\n\n")

            def _send(self, kind: str, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def type_line(app: Tmux, text: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", app.name, text, "Enter"], env=app.env, check=True)


def test_a_timer_speaks_when_due_and_waits_for_a_reply_in_progress(
    pulse: dict[str, str], tmp_path: Path, ears: Ears
):
    model = TimerModel()
    app, env = start_chat(pulse, "--llm", "openai", "--llm-url", model.url, "--tools", "timer")
    try:
        app.wait_for("Ready", timeout=120)
        # 1. Set, and then nothing happens: three seconds later it speaks of itself.
        type_line(app, "Set a timer for three seconds.")
        app.wait_for("AI: The timer is set.", timeout=60)
        app.wait_for("Press Enter to talk", timeout=60, after=1)
        speaker = Speaker(env, tmp_path / "alone.raw")
        screen = app.wait_for("⏰ Time to check the oven.", timeout=20)
        app.wait_for("Press Enter to talk", timeout=30, after=screen.count("Press Enter to talk"))
        time.sleep(0.5)
        alone = speaker.heard()
        assert "oven" in ears.hear(alone).lower(), "the timer was not heard"
        assert screen.count("You: ") == 1, "a timer is not a turn"

        # 2. Due while a long reply plays: the reply plays to its end, then the timer speaks.
        speaker = Speaker(env, tmp_path / "over.raw")
        type_line(app, "Set a timer for three seconds and tell me a story.")
        app.wait_for("fish every evening", timeout=60)
        screen = app.wait_for("⏰ Time to check the oven.", timeout=60, after=1)
        app.wait_for("Press Enter to talk", timeout=30, after=screen.count("Press Enter to talk"))
        time.sleep(0.5)
        over = speaker.heard()
        screen = app.screen()
    finally:
        app.kill()
        model.server.shutdown()
    assert "[interrupted]" not in screen, screen
    _, _, after_story = screen.rpartition("fish every evening")
    assert "⏰ Time to check the oven." in after_story, screen  # said after the reply, not over it
    loud = np.flatnonzero(np.abs(over) > SOUND)
    assert len(loud), "nothing was played"
    # The recording's last words are the timer's, and the story's end came before them, whole.
    heard_end = ears.hear(over[max(0, loud[-1] - 3 * 16000) :]).lower()
    assert "oven" in heard_end, heard_end
    heard_all = ears.hear(over).lower()
    assert heard_all.index("fish") < heard_all.rindex("oven"), heard_all


def test_hands_free_a_timer_set_by_voice_speaks_when_due(pulse: dict[str, str], tmp_path: Path, ears: Ears):
    model = TimerModel()
    asked = speak_to_file("Please set a timer for three seconds.", tmp_path / "q.wav")
    app, env = start_chat(pulse, "--vad", "--llm", "openai", "--llm-url", model.url, "--tools", "timer")
    try:
        app.wait_for("Listening", timeout=120)
        subprocess.run(["paplay", "--device=mic", str(asked)], env=env, check=True)
        app.wait_for("AI: The timer is set.", timeout=60)
        app.wait_for_below("AI: ", "Listening", timeout=60)  # the reply has played
        speaker = Speaker(env, tmp_path / "due.raw")
        screen = app.wait_for("⏰ Time to check the oven.", timeout=20)
        app.wait_for_below("⏰", "Listening", timeout=30)
        time.sleep(0.5)
        due = speaker.heard()
    finally:
        app.kill()
        model.server.shutdown()
    assert "oven" in ears.hear(due).lower(), "the timer was not heard"
    assert screen.count("You: ") == 1, screen  # nobody spoke: the timer is not a turn
