"""The latency benchmark runs and reports every figure it promises (its numbers are not judged here:
speed targets live in the benchmark, not in timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


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
    assert set(figures["modes"]) == {"file", "file-seq", "text", "text-seq"}
    for mode, data in figures["modes"].items():
        stages = data["stages"]
        assert stages["first_audio"]["n"] == 6, mode  # every turn of the run was voiced and timed
        assert 0 < stages["llm_first_token"]["p50"] <= stages["first_audio"]["p50"] <= stages["total"]["p95"]
        assert (stages["stt"]["p50"] is None) == mode.startswith("text")
        assert 50 < data["peak_rss_mb"] < 24 * 1024
    assert figures["ttfa_ratio_text"] > 0 and figures["ttfa_ratio_file"] > 0
    assert "cores" in figures["machine"]
