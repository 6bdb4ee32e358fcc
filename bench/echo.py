#!/usr/bin/env python3
"""Talking over a reply on speakers: echo cancellation measured on our own path.

Two parts, side by side in one run:

1. The cancellers (no devices): a piper reply through a synthetic room (80 ms late, a 250 ms decaying
   tail, a mildly distorting speaker) into each canceller that is installed: WebRTC AEC3
   (`pywebrtc-audio`, the one we use), speex (`pyaec`) and livekit's AEC3. The echo removed (ERLE)
   after the first second and within it, and the CPU per second of audio.
2. The loop on PulseAudio virtual devices with a real echo path: a `module-loopback` from the speaker's
   monitor into the microphone, 60 ms late and about 9 dB down, so `chat.py --vad` hears itself as
   through laptop speakers. It measures:
   - false barge-ins: long replies nobody talks over, and how many of them interrupted themselves,
     per 10 minutes of reply audio (target 0); the same with --no-aec, which proves the echo is real;
   - the program's own echo reduction while replies played, and its CPU cost (its --verbose line);
   - barge-in reaction: a question played into the microphone two seconds into a reply, and the time
     from its first sound to the reply's last (target p50 <= 300 ms), with the question's transcript.

    python bench/echo.py [--replies 3] [--barge-ins 3] [--json] [-- CHAT.PY ARGS]

Needs pulseaudio, pulseaudio-utils, libasound2-plugins, espeak-ng, and `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from devices import RATE, Recording, StderrReader, first_sound, last_sound, pulse_server  # noqa: E402

from latency import percentile  # noqa: E402

ECHO_LATENCY_MS = 60
ECHO_VOLUME = "70%"  # PulseAudio's cubic scale: about -9 dB
STORY = "You are a storyteller. Tell very long stories of many sentences, never lists."
STORY_REQUEST = "Tell me a long story about a dragon and a knight."
QUESTION = "Tell me the capital city of France and its population."  # heard clean with one error
TIMEOUT = 300.0
QUIET = 0.01  # below this on the speaker's recording is silence
PAUSED = 0.05  # s: a reply silent this long before the barge-in was decided was in a pause already


def _pactl(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["pactl", *args], env=env, check=True, capture_output=True, text=True).stdout


@contextmanager
def echo_devices(folder: Path) -> Iterator[dict[str, str]]:
    """pulse_server's "mic" and "spk", with the speaker's sound fed back into the microphone (60 ms late,
    about 9 dB down), and a sink "user" that plays into the microphone and onto its own monitor at
    once, so that what the user says can be found on a recording with no echo in it."""
    with pulse_server(folder) as env:
        _pactl(env, "load-module", "module-null-sink", "sink_name=userrec")
        _pactl(env, "load-module", "module-combine-sink", "sink_name=user", "slaves=mic,userrec")
        module = _pactl(
            env,
            "load-module",
            "module-loopback",
            "source=spk.monitor",
            "sink=mic",
            f"latency_msec={ECHO_LATENCY_MS}",
            "source_dont_move=true",
            "sink_dont_move=true",
        ).strip()
        for _ in range(50):  # the loopback's sink input, to turn it down
            listing = _pactl(env, "list", "sink-inputs")
            found = re.findall(r"Sink Input #(\d+)\n(?:[^\n]*\n)*?\s*Owner Module: (\d+)", listing)
            ids = [sink for sink, owner in found if owner == module]
            if ids:
                _pactl(env, "set-sink-input-volume", ids[0], ECHO_VOLUME)
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the echo loopback did not start")
        yield env


class Chat:
    """chat.py --vad on the echo devices, with its transcript and its stderr."""

    def __init__(self, env: dict[str, str], work: Path, *args: str) -> None:
        self.transcript = work / f"turns-{time.monotonic_ns()}.jsonl"
        self.env = {**env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "spk"}
        argv = [
            sys.executable,
            str(ROOT / "chat.py"),
            "--vad",
            "--verbose",
            "--input-device",
            "pulse",
            "--output-device",
            "pulse",
            "--transcript",
            str(self.transcript),
            "--temperature",
            "0",
            "--seed",
            "1",
            "--system-prompt",
            STORY,
            *args,
        ]
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.said = StderrReader(self.proc)
        if not self.said.ready.wait(TIMEOUT) or self.proc.poll() is not None:
            raise RuntimeError(f"chat.py did not start: {self.said.text.strip()[-400:]}")
        time.sleep(1.0)  # the microphone stream is open and has settled

    def play(self, wav: Path, device: str = "mic") -> None:
        subprocess.run(["paplay", f"--device={device}", str(wav)], env=self.env, check=True)

    def turns(self) -> list[dict[str, Any]]:
        if not self.transcript.exists():
            return []
        return [json.loads(line) for line in self.transcript.read_text().splitlines()]

    def wait_turns(self, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            turns = self.turns()
            if len(turns) >= count:
                return turns
            if self.proc.poll() is not None:
                raise RuntimeError(f"chat.py ended ({self.proc.returncode}): {self.said.text.strip()[-400:]}")
            time.sleep(0.05)
        raise RuntimeError(f"turn {count} never came in {timeout:.0f} s: {self.said.text.strip()[-400:]}")

    def close(self) -> str:
        """Ctrl-D; what it wrote on stderr."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        time.sleep(0.2)
        return self.said.text


def speak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    return path


def played_seconds(speaker: np.ndarray) -> float:
    """Seconds of the speaker's recording with sound in them (20 ms windows)."""
    windows = speaker[: len(speaker) // 320 * 320].reshape(-1, 320)
    return float((np.abs(windows).max(axis=1) > QUIET).sum() * 0.02)


def settle(chat: Chat, quiet: float = 3.0, limit: float = 120.0) -> list[dict[str, Any]]:
    """Waits until no turn has been added for quiet seconds (a self-interruption adds turns, and may
    go on adding them: at most limit seconds)."""
    count, since, began = len(chat.turns()), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - began < limit:
        time.sleep(0.2)
        if len(chat.turns()) != count:
            count, since = len(chat.turns()), time.monotonic()
    return chat.turns()


def long_replies(
    env: dict[str, str], work: Path, count: int, chat_args: list[str], limit: float = 120.0
) -> dict[str, Any]:
    """count long replies that nobody talks over: how many interrupted themselves (each reply's
    aftermath is followed for at most limit seconds)."""
    request = speak(STORY_REQUEST, work / "story.wav")
    speaker = Recording(env, "spk.monitor")
    chat = Chat(env, work, "--max-tokens", "220", *chat_args)
    try:
        for _ in range(count):
            done = len(chat.turns())
            chat.play(request)
            chat.wait_turns(done + 1)
            settle(chat, limit=limit)
        turns = chat.turns()
    finally:
        stderr = chat.close()
        speaker.stop()
    interrupted = sum(1 for t in turns if t.get("interrupted"))
    seconds = played_seconds(speaker.samples())
    summary = next((line for line in stderr.splitlines() if "echo cancellation:" in line), None)
    return {
        "replies": count,
        "turns": len(turns),
        "interrupted": interrupted,
        "reply_seconds": round(seconds, 1),
        "per_10_min": round(interrupted / seconds * 600, 2) if seconds else None,
        "program": summary.split("echo cancellation: ", 1)[1] if summary else None,
    }


def reply_stop(speaker: Recording, began: float, until: float) -> float:
    """When the reply playing at time began stopped for good: the end of its last sound before until
    (the end of the question, before which the answer to it cannot begin). A pause between two of its
    sentences, however long, is not a stop; a reply that was in such a pause when the question began,
    and never went on, stopped at began."""
    samples = speaker.samples()
    first, last = speaker.at(began), speaker.at(until)
    loud = np.flatnonzero(np.abs(samples[first:last]) > QUIET)
    return speaker.time_of(first + int(loud[-1]) + 1) if len(loud) else began


def arrival(user: Recording, mic: Recording, start: int) -> float:
    """When the question whose first sound is at sample start of the user's recording reached the
    microphone, on the same clock. The combined sink plays it to both, but not always in step (by 0.1 s
    and more): its first second is found in the microphone's recording (echo and all) by correlation."""
    question = user.samples()[start : start + RATE]
    around = mic.at(user.time_of(start) - 0.3)
    heard = mic.samples()[around : around + len(question) + int(0.8 * RATE)]
    n = 1 << (len(heard) + len(question)).bit_length()
    score = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(question, n)), n)
    lag = int(np.argmax(score[: len(heard) - len(question) + 1]))
    return mic.time_of(around + lag)


def barge_ins(env: dict[str, str], work: Path, count: int, chat_args: list[str]) -> dict[str, Any]:
    """count questions asked two seconds into a reply: the time from the question's first sound reaching
    the microphone to the reply's last, and what the question was heard as."""
    request = speak(STORY_REQUEST, work / "story.wav")
    question = speak(QUESTION, work / "question.wav")
    speaker, user = Recording(env, "spk.monitor"), Recording(env, "userrec.monitor")
    mic = Recording(env, "mic.monitor")
    chat = Chat(env, work, "--max-tokens", "220", *chat_args)
    reactions: list[float] = []
    skews: list[float] = []  # how much later the microphone got each question than its recording
    decisions: list[float] = []  # from the question reaching the microphone to the program's barge-in
    paused = 0  # replies that were silent (between two sentences) before the barge-in stopped them
    heard: list[str] = []
    rounds: list[list[list[Any]]] = []
    missed = split = 0
    try:
        for _ in range(count):
            done = len(chat.turns())
            asked_story = time.perf_counter()
            chat.play(request)
            deadline = time.monotonic() + TIMEOUT
            while first_sound(speaker.samples(), speaker.at(asked_story + 1.0)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the story was never spoken")
                time.sleep(0.05)
            time.sleep(2.0)
            asked = time.perf_counter()
            chat.play(question, device="user")
            chat.wait_turns(done + 2)  # at least the story request's turn and the question's
            time.sleep(0.5)
            settle(chat)
            # Every turn this round added, in order: what was heard, and whether it was cut off. The
            # question's turn is the one after the turn it cut off; the turns before that are the story
            # request (more than one when a pause inside it ended a turn: see "split").
            added = chat.turns()[done:]
            rounds.append([[t["user"], bool(t.get("interrupted"))] for t in added])
            cut = next((i for i, t in enumerate(added) if t.get("interrupted")), None)
            split += cut is not None and cut > 0
            start = first_sound(user.samples(), user.at(asked))
            end = last_sound(user.samples(), start) if start is not None else None
            if cut is None or cut + 1 >= len(added) or start is None or end is None:
                missed += 1
                continue
            heard.append(added[cut + 1]["user"])
            began = arrival(user, mic, start)
            skews.append(began - user.time_of(start))
            ended = began + (end - start) / RATE
            stopped = reply_stop(speaker, began, ended + 0.2)
            reactions.append(stopped - began)
            # When the program decided (its -v line, on the same clock): a reply already silent by then
            # was in a pause between sentences (its speech fell behind), not stopped by the barge-in.
            said = [float(t) for t in re.findall(r"the reply stops \(at ([0-9.]+)\)", chat.said.text)]
            decided = next((t for t in said if t > began), None)
            if decided is not None:
                decisions.append(decided - began)
                paused += stopped < decided - PAUSED
    finally:
        chat.close()
        speaker.stop()
        user.stop()
        mic.stop()
    return {
        "asked": count,
        "missed": missed,
        "reaction_p50": percentile(reactions, 0.5),
        "reactions": [round(r, 3) for r in reactions],
        "question_skew": [round(s, 3) for s in skews],
        "decision_p50": percentile(decisions, 0.5),
        "decisions": [round(d, 3) for d in decisions],
        "in_a_pause": paused,
        "heard": heard,
        "split": split,
        "rounds": rounds,
    }


def room_echo(far: np.ndarray) -> np.ndarray:
    """far (16 kHz) as a laptop microphone would hear it from the speakers: 80 ms late, through a 250 ms
    decaying room tail, a little distorted by the speaker (the tests use the same room)."""
    from talkgpt4all.audio import SAMPLE_RATE

    rng = np.random.default_rng(0)
    t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    room = rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.25)
    room[0] = 3.0
    room *= 0.5 / np.sqrt((room**2).sum())
    delay = int(0.08 * SAMPLE_RATE)
    echo = np.concatenate([np.zeros(delay), np.convolve(far, room)[: len(far) - delay]])
    heard: np.ndarray = (np.tanh(2 * echo) / 2).astype(np.float32)
    return heard


def steady_reply(text: str) -> np.ndarray:
    """text in the starter piper voice at 16 kHz and half scale, as a reply the speakers play. Without
    piper's random variation, so that runs compare: the same reply every time."""
    from piper import SynthesisConfig

    from talkgpt4all.audio import SAMPLE_RATE, resample
    from talkgpt4all.tts.piper import Piper

    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(Piper().find("en").synthesize(text, syn_config=steady))
    said = np.concatenate([c.audio_float_array for c in chunks])
    return (resample(said, chunks[0].sample_rate, SAMPLE_RATE) * 0.5).astype(np.float32)


Step = Callable[[np.ndarray, np.ndarray], np.ndarray]  # a canceller: (microphone, speakers) -> clean


def cancellers(seconds: float = 10.0) -> list[dict[str, Any]]:
    """ERLE and CPU of each installed canceller on a piper reply through a synthetic room."""
    from talkgpt4all.audio import SAMPLE_RATE

    far = steady_reply(
        "Paris is the capital of France. It sits on the river Seine, and it is known for its museums, its "
        "cafes and the Eiffel Tower. Millions of people visit it every year to see its art and its parks."
    )
    noise = np.random.default_rng(1).standard_normal(len(far)) * 0.001  # the microphone's own hiss
    near = (room_echo(far) + noise).astype(np.float32)
    frame = SAMPLE_RATE // 100
    n = len(far) // frame * frame

    def webrtc() -> Step:
        from pywebrtc_audio import EchoCanceller

        aec = EchoCanceller(SAMPLE_RATE, 1, 0)
        return lambda a, b: aec.process(a, b)

    def speex() -> Step:
        from pyaec import Aec

        aec = Aec(frame, 4096, SAMPLE_RATE, True)  # as talkGPT4All runs it: with the echo suppressor
        return lambda a, b: (
            np.asarray(
                aec.cancel_echo((a * 32767).astype(np.int16), (b * 32767).astype(np.int16)), np.float32
            )
            / 32767
        )

    def livekit() -> Step:
        from livekit import rtc

        apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=True)

        def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            ff = rtc.AudioFrame.create(SAMPLE_RATE, 1, frame)
            nf = rtc.AudioFrame.create(SAMPLE_RATE, 1, frame)
            np.frombuffer(ff.data, np.int16)[:] = (b * 32767).astype(np.int16)
            np.frombuffer(nf.data, np.int16)[:] = (a * 32767).astype(np.int16)
            apm.process_reverse_stream(ff)
            apm.process_stream(nf)
            return np.frombuffer(nf.data, np.int16).astype(np.float32) / 32767

        return run

    rows = []
    makers = (
        ("webrtc AEC3 (pywebrtc-audio)", webrtc),
        ("speex (pyaec), 4096 taps, suppressor on", speex),
        ("livekit AEC3+NS", livekit),
    )
    for name, make in makers:
        try:
            step = make()
        except ImportError:
            rows.append({"canceller": name, "installed": False})
            continue
        out = np.zeros(n, np.float32)
        began = time.process_time()
        for i in range(0, n, frame):
            out[i : i + frame] = step(near[i : i + frame], far[i : i + frame])
        cpu = time.process_time() - began

        def erle(part: slice, out: np.ndarray = out) -> float:
            return float(10 * np.log10((near[part] ** 2).sum() / max((out[part] ** 2).sum(), 1e-12)))

        rows.append(
            {
                "canceller": name,
                "installed": True,
                "erle_after_1s_db": round(erle(slice(SAMPLE_RATE, n)), 1),
                "erle_first_1s_db": round(erle(slice(0, SAMPLE_RATE)), 1),
                "cpu_ms_per_s": round(1000 * cpu / (n / SAMPLE_RATE), 1),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=3, help="long replies nobody talks over (default: 3)")
    parser.add_argument("--barge-ins", type=int, default=3, help="questions asked over a reply (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args, rest = parser.parse_known_args()
    chat_args = rest[1:] if rest[:1] == ["--"] else rest
    print("cancellers on a synthetic room…", file=sys.stderr, flush=True)
    figures: dict[str, Any] = {"cancellers": cancellers()}
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-echo-") as tmp:
        work = Path(tmp)
        # Without the canceller, one reply is enough: it interrupts itself, again and again.
        for key, extra, count in (("aec", [], args.replies), ("no_aec", ["--no-aec", "--barge-in"], 1)):
            print(f"long replies, {key}…", file=sys.stderr, flush=True)
            with echo_devices(work / f"pulse-{key}") as env:
                figures[f"long_replies_{key}"] = long_replies(
                    env, work, count, [*extra, *chat_args], limit=30.0 if extra else 120.0
                )
        print("barge-ins…", file=sys.stderr, flush=True)
        with echo_devices(work / "pulse-barge") as env:
            figures["barge_in"] = barge_ins(env, work, args.barge_ins, chat_args)
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
        return 0
    for row in figures["cancellers"]:
        if not row["installed"]:
            print(f"{row['canceller']}: not installed")
            continue
        print(
            f"{row['canceller']}: {row['erle_after_1s_db']} dB after the first second, "
            f"{row['erle_first_1s_db']} dB within it, {row['cpu_ms_per_s']} ms CPU per second"
        )
    for key in ("aec", "no_aec"):
        r = figures[f"long_replies_{key}"]
        print(
            f"{key}: {r['replies']} long replies, {r['interrupted']} self-interruptions (false barge-ins) "
            f"over "
            f"{r['reply_seconds']} s of reply audio, {r['per_10_min']} per 10 minutes"
            + (f"; the program: {r['program']}" if r["program"] else "")
        )
    b = figures["barge_in"]
    p50 = "-" if b["reaction_p50"] is None else f"{b['reaction_p50'] * 1000:.0f} ms"
    decided = "-" if b["decision_p50"] is None else f"{b['decision_p50'] * 1000:.0f} ms"
    print(
        f"barge-in: reaction p50 {p50} over {len(b['reactions'])} of {b['asked']} (from each question "
        f"reaching the microphone, {b['question_skew']} s after its clean recording), the program deciding "
        f"at {decided} p50; {b['in_a_pause']} replies were in a pause already; {b['split']} story requests "
        f"were heard as more than one turn; heard: {b['heard']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
