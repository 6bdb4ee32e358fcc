#!/usr/bin/env python3
"""Hands-free TTFA as a user would measure it: on audio devices, from outside the program.

A private PulseAudio server gets two virtual devices, a microphone and a speaker (null sinks; the
program records the microphone's monitor and plays to the speaker). `chat.py --vad` runs on them as a
user would start it. Each question is played into the microphone; both devices are recorded all along,
each recording time-stamped as it arrives. TTFA is the time from the end of each question, as recorded
on the microphone, to the first sound of its reply, as recorded on the speaker. The program's own
figures (its transcript) are reported beside it.

Each row is one session with its own settings, on the same questions (six held-out questions, each in
piper's and espeak-ng's voice, bench/speech.py):
- default: the settings a Linux user gets (the voice is piper where it is installed, `.[piper]`);
- espeak: `--tts espeak`, as the README's earlier figures were measured;
- tiny.en: `--whisper-model tiny.en`;
- binary: `--llm binary` (bin/llama-server);
- wake: `--wake hey_jarvis`, each question in piper's voice after "Hey Jarvis," in one breath, against the
  same questions without it in the default row;
and, with --paused, the default settings on sentences with a 0.65-0.8 s pause in the middle ("What is
the difference between" ... "a frog and a toad?"): how many were cut early (the first turn heard was
the first half), beside their TTFA.

    python bench/devices.py [-n 1] [--rows default,espeak,tiny.en,binary] [--paused] [--chat PATH]
                            [--json] [-- CHAT.PY ARGS]

--chat runs another checkout's chat.py (the code before a change), on the same material.

Needs pulseaudio, pulseaudio-utils and libasound2-plugins, espeak-ng, and `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from speech import HELD_OUT, paused_set, say  # noqa: E402

from latency import SYSTEM_PROMPT, machine, percentile  # noqa: E402

RATE = 16000
SOUND = 0.02  # |sample| above this is sound, on both recordings (a null sink adds no noise)
TURN_TIMEOUT = 120.0  # seconds for one question's turn to be recorded in the transcript
SETTLE = 6.0  # seconds without a new turn after a cut sentence, before the next one is played
NEEDED = ("pulseaudio", "pactl", "paplay", "parec")
ROWS = {
    "default": [],
    "espeak": ["--tts", "espeak"],
    "tiny.en": ["--whisper-model", "tiny.en"],
    "binary": ["--llm", "binary"],
    # Each question said after the wake word, in one breath (piper's voice only: espeak-ng's robotic
    # "Hey Jarvis" is not heard), with no follow-up window, so that every turn is woken.
    "wake": ["--wake", "hey_jarvis", "--follow-up", "0", "--no-chime"],
}
WAKE_WORD = "Hey Jarvis, "


@contextmanager
def pulse_server(folder: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio server with the null sinks "mic" and "spk"; the environment to reach it."""
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        apt = "sudo apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
        sys.exit(f"missing {', '.join(missing)}: {apt}")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(folder), "PULSE_RUNTIME_PATH": str(folder / "pulse")}
    env.pop("PULSE_SERVER", None)
    subprocess.run(
        [
            "pulseaudio",
            "-D",
            "--exit-idle-time=-1",
            "-n",
            "--use-pid-file=yes",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=mic",
            "--load=module-null-sink sink_name=spk",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        for _ in range(50):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            sys.exit("PulseAudio did not start")
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)


class Recording:
    """What a PulseAudio source hears, with each sample's time on this process's clock.

    parec's blocks arrive a little after they were recorded, never before: the least-delayed block
    pins the recording to the clock (sample i was heard at `start + i / RATE`), to within a few ms.
    """

    def __init__(self, env: dict[str, str], source: str) -> None:
        self.proc = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=10",
            ],
            env=env,
            stdout=subprocess.PIPE,
        )
        self._data = bytearray()
        self.start = float("inf")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            arrived = time.perf_counter()
            self._data += chunk
            self.start = min(self.start, arrived - len(self._data) / 2 / RATE)

    def samples(self) -> np.ndarray:
        data = bytes(self._data[: len(self._data) // 2 * 2])
        return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768

    def at(self, when: float) -> int:
        """The sample heard at this time."""
        return max(0, int((when - self.start) * RATE))

    def time_of(self, sample: int) -> float:
        return self.start + sample / RATE

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self._reader.join(5)


def first_sound(samples: np.ndarray, after: int) -> int | None:
    loud = np.flatnonzero(np.abs(samples[after:]) > SOUND)
    return after + int(loud[0]) if len(loud) else None


def last_sound(samples: np.ndarray, after: int) -> int | None:
    loud = np.flatnonzero(np.abs(samples[after:]) > SOUND)
    return after + int(loud[-1]) if len(loud) else None


def wait_for_turns(
    transcript: Path, count: int, proc: subprocess.Popen[str], said: StderrReader | None = None
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TURN_TIMEOUT
    while time.monotonic() < deadline:
        lines = read_turns(transcript)
        if len(lines) >= count:
            return lines
        if proc.poll() is not None:
            why = said.text.strip().splitlines()[-1:] if said is not None else []
            sys.exit(f"chat.py ended ({proc.returncode}) before turn {count}: {' '.join(why)}")
        time.sleep(0.05)
    sys.exit(f"turn {count} was never recorded in {TURN_TIMEOUT:.0f} s")


def read_turns(transcript: Path) -> list[dict[str, Any]]:
    if not transcript.exists():
        return []
    return [json.loads(line) for line in transcript.read_text().splitlines()]


def settle(transcript: Path, proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Every turn, once none has been added for SETTLE seconds (what a cut sentence set off is over)."""
    count, quiet_since = len(read_turns(transcript)), time.monotonic()
    while time.monotonic() - quiet_since < SETTLE and proc.poll() is None:
        time.sleep(0.1)
        now = len(read_turns(transcript))
        if now != count:
            count, quiet_since = now, time.monotonic()
    return read_turns(transcript)


def closer_to(text: str, first: str, whole: str) -> bool:
    """Whether what was heard is the first half of the sentence rather than the whole of it."""
    import jiwer

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import normalize

    heard = normalize(text) or "-"
    return float(jiwer.wer(normalize(first), heard)) < float(jiwer.wer(normalize(whole), heard))


def alignment(env: dict[str, str], mic: Recording, speaker: Recording, work: Path) -> float | None:
    """Checks the two recordings' clocks against each other: a beep played to both devices at once
    (through a combined sink) should land at the same time in both. Seconds the speaker's lands after
    the microphone's."""
    beep = work / "beep.wav"
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE // 20) / RATE) * 32767).astype(np.int16)
    with wave.open(str(beep), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone.tobytes())
    subprocess.run(
        ["pactl", "load-module", "module-combine-sink", "sink_name=both", "slaves=mic,spk"],
        env=env,
        check=True,
        capture_output=True,
    )
    time.sleep(0.5)
    played = time.perf_counter()
    subprocess.run(["paplay", "--device=both", str(beep)], env=env, check=True)
    time.sleep(0.5)
    on_mic = first_sound(mic.samples(), mic.at(played))
    on_speaker = first_sound(speaker.samples(), speaker.at(played))
    subprocess.run(["pactl", "unload-module", "module-combine-sink"], env=env, capture_output=True)
    if on_mic is None or on_speaker is None:
        return None
    return speaker.time_of(on_speaker) - mic.time_of(on_mic)


@dataclass
class Item:
    """One thing said into the microphone: a question, or a sentence with a pause inside it."""

    path: Path
    voice: str = ""
    whole: str = ""  # a paused sentence: all of it
    first: str = ""  # and its first half


def run(
    items: list[Item], work: Path, chat: Path, chat_args: list[str]
) -> tuple[list[dict[str, Any]], float | None]:
    """One hands-free session on the virtual devices; per item, both clocks' figures; and the
    recordings' clock alignment."""
    with pulse_server(work / "pulse") as env:
        transcript = work / "turns.jsonl"
        transcript.unlink(missing_ok=True)
        argv = [
            sys.executable,
            str(chat),
            "--vad",
            "--input-device",
            "pulse",
            "--output-device",
            "pulse",
            "--transcript",
            str(transcript),
            "--temperature",
            "0",
            "--seed",
            "1",
            "--max-tokens",
            "60",
            "--system-prompt",
            SYSTEM_PROMPT,
            *chat_args,
        ]
        env = {**env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "spk"}
        mic, speaker = Recording(env, "mic.monitor"), Recording(env, "spk.monitor")
        time.sleep(0.5)
        offset = alignment(env, mic, speaker, work)
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        said = StderrReader(proc)
        figures = []
        try:
            if not said.ready.wait(TURN_TIMEOUT):
                sys.exit(f"chat.py never said it was ready: {said.text.strip()}")
            time.sleep(1.0)  # the microphone stream is open and has settled
            for number, item in enumerate(items, 1):
                before = len(read_turns(transcript))
                asked = time.perf_counter()
                subprocess.run(["paplay", "--device=mic", str(item.path)], env=env, check=True)
                line = wait_for_turns(transcript, before + 1, proc, said)[before]
                figure: dict[str, Any] = {
                    "item": number,
                    "voice": item.voice,
                    "user": line["user"],
                    "program": line["timings"],
                }
                if item.whole:
                    figure["cut"] = closer_to(line["user"], item.first, item.whole)
                    if figure["cut"]:
                        figure["then"] = [t["user"] for t in settle(transcript, proc)[before + 1 :]]
                time.sleep(0.5)  # the last of the reply reaches the speaker's monitor
                question_end = last_sound(mic.samples(), mic.at(asked))
                if question_end is not None and not figure.get("cut"):
                    end = mic.time_of(question_end)
                    reply_start = first_sound(speaker.samples(), speaker.at(end))
                    if reply_start is not None:
                        start = speaker.time_of(reply_start)
                        figure.update(question_end=end, reply_start=start, ttfa_device=start - end)
                figures.append(figure)
                time.sleep(1.0)  # a pause before the next question
        finally:
            if proc.stdin:
                proc.stdin.close()  # Ctrl-D
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            mic.stop()
            speaker.stop()
    return figures, offset


class StderrReader:
    """Reads what the program writes on stderr, all along (a full pipe would stop it), and notes when
    it says it is ready."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.text, self.ready = proc, "", threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr
        while piece := self.proc.stderr.read(1):
            self.text += piece
            if "Ready" in self.text[-200:]:
                self.ready.set()
        self.ready.set()  # it ended: waiting longer is pointless


def summarize(turns: list[dict[str, Any]]) -> dict[str, Any]:
    device = [t["ttfa_device"] for t in turns if "ttfa_device" in t]
    own = [t["program"]["first_audio"] for t in turns if t["program"].get("first_audio") is not None]
    row: dict[str, Any] = {
        "turns": turns,
        "measured": len(device),
        "ttfa_device_p50": percentile(device, 0.5),
        "ttfa_device_p95": percentile(device, 0.95),
        "program_first_audio_p50": percentile(own, 0.5),
    }
    paused = [t for t in turns if "cut" in t]
    if paused:
        row["cut_early"] = sum(bool(t["cut"]) for t in paused)
        row["paused"] = len(paused)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=1, help="rounds of the questions (default: 1)")
    parser.add_argument(
        "--rows", default="default,espeak", help=f"of {', '.join(ROWS)} (default: default,espeak)"
    )
    parser.add_argument(
        "--paused", action="store_true", help="add the paused sentences, with the default settings"
    )
    parser.add_argument(
        "--chat", type=Path, default=ROOT / "chat.py", help="the chat.py to run (default: this one)"
    )
    parser.add_argument("--limit", type=int, help="only the first N questions (and paused sentences)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args, rest = parser.parse_known_args()
    chat_args = rest[1:] if rest[:1] == ["--"] else rest
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}: use {', '.join(ROWS)}")
    results: dict[str, dict[str, Any]] = {}
    offsets: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-devices-") as tmp:
        work = Path(tmp)
        questions = [
            Item(say(q, voice, work / f"q{i}-{voice}.wav"), voice)
            for i, q in enumerate(HELD_OUT)
            for voice in ("piper", "espeak")
        ]
        questions = questions[: args.limit]
        woken = [
            Item(say(WAKE_WORD + q, "piper", work / f"w{i}.wav"), "piper") for i, q in enumerate(HELD_OUT)
        ][: args.limit]
        plan = [(row, woken if row == "wake" else questions, ROWS[row]) for row in rows]
        if args.paused:
            paused = [
                Item(path, "", whole, whole[: -len(second)].strip())
                for path, whole, second in paused_set(work)
            ]
            plan.append(("paused", paused[: args.limit], []))
        for row, items, flags in plan:
            turns: list[dict[str, Any]] = []
            for round_ in range(args.rounds):
                print(f"{row}: round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
                figures, offset = run(items, work, args.chat, [*flags, *chat_args])
                turns += figures
                offsets.append(offset)
            results[row] = summarize(turns)
    alignment_ms = [None if o is None else round(o * 1000, 1) for o in offsets]
    summary = {"machine": machine(), "chat": str(args.chat), "rows": results, "alignment_ms": alignment_ms}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    report(summary)
    return 0


def report(summary: dict[str, Any]) -> None:
    """The figures as a table, the ratios, and what was cut early."""
    results, alignment_ms = summary["rows"], summary["alignment_ms"]
    aligned = ", ".join("-" if o is None else f"{o:+.1f} ms" for o in alignment_ms)
    print(f"machine: {summary['machine']}; chat.py: {summary['chat']}")
    print(f"clock check: a beep played to both devices at once lands {aligned} apart in the recordings")
    print(f"{'row':<10}{'turns':>7}{'TTFA p50':>10}{'p95':>8}{'own p50':>9}{'cut early':>11}")
    for row, r in results.items():
        p50, p95, own = r["ttfa_device_p50"], r["ttfa_device_p95"], r["program_first_audio_p50"]
        cut = f"{r['cut_early']} of {r['paused']}" if "paused" in r else "-"
        cells = [f"{v:.3f}" if v is not None else "-" for v in (p50, p95, own)]
        print(f"{row:<10}{r['measured']:>7}{cells[0]:>10}{cells[1]:>8}{cells[2]:>9}{cut:>11}")
    if "wake" in results and "default" in results:
        plain = [
            t["ttfa_device"]
            for t in results["default"]["turns"]
            if t.get("voice") == "piper" and "ttfa_device" in t
        ]
        w, d = results["wake"]["ttfa_device_p50"], percentile(plain, 0.5)
        if w and d:
            print(
                f"--wake, in one breath with the question, against the same questions (piper): {w / d:.2f}x"
            )
    if "binary" in results and "default" in results:
        b, d = results["binary"]["ttfa_device_p50"], results["default"]["ttfa_device_p50"]
        if b and d:
            print(f"--llm binary against in-process, TTFA p50: {b / d:.2f}x")
    for row, r in results.items():
        for t in r["turns"]:
            if t.get("cut"):
                print(f"{row}: cut early: heard {t['user']!r}, then {t.get('then')}")


if __name__ == "__main__":
    sys.exit(main())
