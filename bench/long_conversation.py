#!/usr/bin/env python3
"""Long-conversation benchmark: does a turn cost the same at turn 200 as at turn 2?

It types N questions (default 200) into one `chat.py --text` conversation at a small context (default
1024 tokens), so the history fills the context early and old turns are dropped from then on. Replies
are spoken with espeak-ng into WAV files, so time to first audio (TTFA) is measured as a user would
live it. Two conversations, one after the other in the same run:

  shift   the default: old turns are dropped one at a time, and the model's cache is shifted past them
  steps   --no-context-shift: old turns are dropped in large steps (to half the budget), and the
          history after the system prompt is computed again at each step

It reports TTFA by turn (p50 per block of 20 turns), the targets' ratios, the prompt tokens the model
computed per turn, and resident memory at turn 20 and at the end.

    python bench/long_conversation.py [--turns 200] [--context 1024] [--json] [--only shift]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import machine, percentile

ROOT = Path(__file__).resolve().parent.parent
TOPICS = [
    "the moon", "rivers", "bread", "the color blue", "owls", "music", "volcanoes", "tea", "bicycles",
    "the ocean", "snow", "honey bees", "mountains", "clocks", "paper", "wolves", "rain", "glass",
    "trains", "salt",
]  # fmt: skip
MODES = {"shift": [], "steps": ["--no-context-shift"]}
BLOCK = 20  # turns per row of the TTFA-by-turn table


def questions(n: int) -> list[str]:
    return [f"Tell me one short fact about {TOPICS[i % len(TOPICS)]}, please ({i + 1})." for i in range(n)]


def _kib(status: str, key: str) -> int:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_mode(mode: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One conversation; its transcript lines, RSS at turn 20 and at the end (KiB)."""
    transcript = work / f"{mode}.jsonl"
    transcript.unlink(missing_ok=True)
    argv = [
        sys.executable,
        str(ROOT / "chat.py"),
        "--text",
        "--no-play",
        # espeak-ng, as the README's figures were measured: Linux's default (auto) speaks English
        # with piper, whose first clause takes about 0.08 s more here.
        "--tts",
        "espeak",
        "--save-audio",
        str(work / f"{mode}-audio"),
        "--transcript",
        str(transcript),
        "--context",
        str(args.context),
        "--max-tokens",
        str(args.max_tokens),
        "--temperature",
        "0",
        "--seed",
        "1",
        *MODES[mode],
    ]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin and proc.stderr
    memory: dict[str, int] = {}

    def watch() -> None:
        """Reads the process's memory as turn 20 ends (the transcript is written as each turn ends)."""
        status_path = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            lines = transcript.read_text().count("\n") if transcript.exists() else 0
            if lines >= BLOCK and "turn20" not in memory:
                try:
                    status = status_path.read_text()
                except OSError:
                    return
                memory["turn20"] = _kib(status, "VmHWM")
                memory["turn20_rss"] = _kib(status, "VmRSS")
            try:
                memory["last_rss"] = _kib(status_path.read_text(), "VmRSS")
            except OSError:
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc.stdin.write(("\n".join(questions(args.turns)) + "\n").encode())
    proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join(5)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed ({proc.returncode}): {err.strip()}")
    turns = [json.loads(line) for line in transcript.read_text().splitlines()]
    return {"turns": turns, "peak_kib": usage.ru_maxrss, **memory}


def summarize(mode: str, data: dict[str, Any], block: int = BLOCK) -> dict[str, Any]:
    turns = data["turns"]
    ttfa = [t["timings"]["first_audio"] for t in turns]
    evaluated = [t.get("prompt_evaluated") for t in turns]
    sizes = [t["prompt_tokens"] for t in turns]
    full = next((i for i in range(1, len(sizes)) if sizes[i] < sizes[i - 1]), None)
    blocks = [
        {
            "turns": f"{start + 1}-{min(start + block, len(turns))}",
            "ttfa_p50": percentile([v for v in ttfa[start : start + block] if v is not None], 0.5),
            "computed_p50": percentile([v for v in evaluated[start : start + block] if v is not None], 0.5),
        }
        for start in range(0, len(turns), block)
    ]
    first = percentile([v for v in ttfa[:block] if v is not None], 0.5)
    last = percentile([v for v in ttfa[-block:] if v is not None], 0.5)
    later_p95 = percentile([v for v in ttfa[block:] if v is not None], 0.95)
    after_full = [e for e in evaluated[full:] if e is not None] if full is not None else []
    turn20 = data.get("turn20")
    return {
        "mode": mode,
        "turns": len(turns),
        "context_full_at_turn": None if full is None else full + 1,
        "blocks": blocks,
        "ttfa_p50_first_block": first,
        "ttfa_p50_last_block": last,
        "ratio_last_to_first": last / first if first and last else None,
        "ttfa_p95_after_first_block": later_p95,
        "ratio_p95_later_to_first_p50": later_p95 / first if first and later_p95 else None,
        "computed_mean_after_full": sum(after_full) / len(after_full) if after_full else None,
        "prompt_mean_after_full": sum(sizes[full:]) / len(sizes[full:]) if full is not None else None,
        "peak_rss_mb_turn20": turn20 / 1024 if turn20 else None,
        "peak_rss_mb_end": data["peak_kib"] / 1024,
        "peak_rss_growth": data["peak_kib"] / turn20 - 1 if turn20 else None,
    }


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"machine: {figures['machine']}")
    print(
        f"SmolLM2-135M-Instruct Q4_1 (llama-cpp), espeak-ng to WAV; {args.turns} typed turns, "
        f"--context {args.context} --max-tokens {args.max_tokens}"
    )
    modes = figures["modes"]
    print("TTFA p50 (s) and prompt tokens computed (p50), per block of turns:")
    print(f"{'turns':<10}" + "".join(f"{m + ' ttfa':>16}{m + ' computed':>20}" for m in modes))
    for i, block in enumerate(next(iter(modes.values()))["blocks"]):
        row = f"{block['turns']:<10}"
        for m in modes.values():
            b = m["blocks"][i]
            row += f"{fmt(b['ttfa_p50']):>16}{fmt(b['computed_p50'], '.0f'):>20}"
        print(row)
    print()
    for name, m in modes.items():
        print(
            f"{name}: context full at turn {m['context_full_at_turn']}; "
            f"TTFA p50 last block / first block x{fmt(m['ratio_last_to_first'], '.2f')} (target <= 1.2); "
            f"p95 of later turns / first-block p50 x{fmt(m['ratio_p95_later_to_first_p50'], '.2f')} "
            f"(target <= 2); computed {fmt(m['computed_mean_after_full'], '.0f')} of "
            f"{fmt(m['prompt_mean_after_full'], '.0f')} prompt tokens a turn once full; "
            f"peak RSS {fmt(m['peak_rss_mb_turn20'], '.0f')} MB at turn 20, "
            f"{fmt(m['peak_rss_mb_end'], '.0f')} MB at the end "
            f"({fmt(None if m['peak_rss_growth'] is None else 100 * m['peak_rss_growth'], '+.1f')}%, "
            "target < 5%)"
        )
    if "shift" in modes and "steps" in modes:
        for key, label in (
            ("ttfa_p50_last_block", "p50 of the last block"),
            ("ttfa_p95_after_first_block", "p95 after the first block"),
        ):
            a, b = modes["steps"][key], modes["shift"][key]
            if a and b:
                print(f"TTFA {label}, steps / shift: x{a / b:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=200, help="typed turns (default: 200)")
    parser.add_argument("--context", type=int, default=1024, help="context window (default: 1024)")
    parser.add_argument("--max-tokens", type=int, default=60, help="reply length cap (default: 60)")
    parser.add_argument("--only", choices=sorted(MODES), help="run one mode only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    modes = [args.only] if args.only else list(MODES)
    with tempfile.TemporaryDirectory(prefix="talkgpt4all-long-") as tmp:
        runs = {}
        for mode in modes:
            print(f"{mode}: {args.turns} turns…", file=sys.stderr, flush=True)
            runs[mode] = run_mode(mode, args, Path(tmp))
    figures = {"machine": machine(), "modes": {m: summarize(m, runs[m]) for m in modes}}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
