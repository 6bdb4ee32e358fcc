"""The latency benchmark runs and reports every figure it promises (its numbers are not judged here:
speed targets live in the benchmark, not in timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_latency_benchmark_reports_every_mode_stage_and_ratio():
    pytest.importorskip("piper", reason="install the bench extra: pip install -e '.[bench]' (.ci/run does)")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "latency.py"),
            "-n",
            "1",
            "--json",
            "--whisper-model",
            "tiny.en",
            "--max-tokens",
            "48",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    live_modes = {"live", "live-en", "live-tiny", "live-pause", "live-wait"}
    assert set(figures["modes"]) == {"file", "file-seq", "text", "text-seq", *live_modes}
    for mode, data in figures["modes"].items():
        stages = data["stages"]
        assert stages["first_audio"]["n"] == 6, mode  # every turn of the run was voiced and timed
        assert 0 < stages["llm_first_token"]["p50"] <= stages["first_audio"]["p50"] <= stages["total"]["p95"]
        assert (stages["stt"]["p50"] is None) == mode.startswith("text")
        live = mode.startswith("live")
        # Hands-free, the wait for the pause is measured, and TTFA is measured from outside too.
        assert (stages["endpoint"]["n"] == 6) == live and (stages["ttfa_true"]["n"] == 6) == live, mode
        if live:
            # With speculation the transcript may be ready before the end of the turn is decided.
            assert 0 < stages["endpoint"]["p50"] < stages["first_audio"]["p50"], mode
            assert 0 < stages["stt"]["p50"] < stages["first_audio"]["p50"], mode
        # No turn's work starts in a pause with --no-speculate, nor outside --vad. (How many hands-free
        # turns it does start there depends on the machine's timing: the benchmark reports it;
        # test_speculation.py proves that it does.)
        if not live or mode == "live-wait":
            assert data["speculated"] == 0, mode
    # The text modes load no Whisper: the memory the benchmark reports must show it.
    modes = figures["modes"]
    assert modes["text"]["peak_rss_mb"] < modes["file"]["peak_rss_mb"] < modes["live"]["peak_rss_mb"]
    assert figures["ttfa_ratio_text"] > 0 and figures["ttfa_ratio_file"] > 0
    assert "cores" in figures["machine"]


@pytest.mark.slow
def test_long_conversation_benchmark_reports_both_modes_by_turn():
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "long_conversation.py"),
            "--turns",
            "40",
            "--context",
            "512",
            "--max-tokens",
            "32",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures["modes"]) == {"shift", "steps"}
    for mode, data in figures["modes"].items():
        assert data["turns"] == 40 and [b["turns"] for b in data["blocks"]] == ["1-20", "21-40"], mode
        assert data["context_full_at_turn"] < 20, mode  # 512 tokens fill early: most turns trim
        assert data["ratio_last_to_first"] > 0 and data["ratio_p95_later_to_first_p50"] > 0
        # Memory is measured at turn 20 and at the end (its growth is the benchmark's figure to judge).
        assert data["peak_rss_growth"] is not None, mode
    # Once the context is full, shifting the cache computes less per turn than trimming in steps does.
    shift, steps = figures["modes"]["shift"], figures["modes"]["steps"]
    assert shift["computed_mean_after_full"] < steps["computed_mean_after_full"]


def test_tools_benchmark_reports_each_row_beside_the_one_without_tools():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tools.py"), "--rounds", "1", "--turns", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures["rows"]) == {"no tools", "built-in get_time", "MCP list_notes"}
    assert figures["rows"]["no tools"]["extra_p50"] == 0
    for row in figures["rows"].values():
        assert 0 < row["first_token_p50"] <= row["first_audio_p50"] <= row["first_audio_p95"]
    assert "cores" in figures["machine"] and figures["turns"] == 2
