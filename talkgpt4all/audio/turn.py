"""Semantic end of turn: has the user finished speaking, or only paused? Smart Turn v3.2 decides.

Smart Turn v3.2 (pipecat-ai, BSD-2) is a Whisper-tiny encoder with a classifier head, 8.7 MB as int8
ONNX, trained on 23 languages including Chinese. It hears the last 8 s of the turn and says how likely
it is to be complete, from the words and the way they are said ("What is the capital of France?" against
"I would like to know about the"). It runs in about 50 ms on this project's 2-core test machine.

The model is found as the others are (models.py): a path, a file in models/, the Hugging Face cache or a
download from pipecat-ai/smart-turn-v3, and last the copy inside the pipecat-ai wheel on PyPI, taken
without pipecat's dependencies and checked against its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import ModelError
from talkgpt4all.models import files_from_wheel

log = logging.getLogger("talkgpt4all")

TURN_REPO = "pipecat-ai/smart-turn-v3"
TURN_FILE = "smart-turn-v3.2-cpu.onnx"
TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
TURN_NAMES = ("smart-turn", "smart-turn-v3", "smart-turn-v3.2")
# The same file inside pipecat's wheel on PyPI: an offline-installable source for the starter copy.
PIPECAT_WHEEL = "pipecat-ai==1.14.0"
PIPECAT_PATH = f"pipecat/audio/turn/smart_turn/data/{TURN_FILE}"
SECONDS = 8  # what the model hears: the end of the turn, left-padded with silence when shorter


class SmartTurn:
    """Probability that a turn is complete, from its audio (16 kHz mono float32)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.enable_cpu_mem_arena = False  # one small input at a time: the arena only holds memory
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options)
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelError(f"cannot load the turn model {path} ({exc}): pass another --turn-model") from exc
        # Whisper's log-mel features, as Smart Turn was trained on: faster-whisper's extractor gives the
        # same numbers as the transformers one Smart Turn uses (to 4e-6), on a normalized waveform.
        self._features = FeatureExtractor(feature_size=80)
        self.path = path

    def __call__(self, audio: np.ndarray) -> float:
        n = SECONDS * SAMPLE_RATE
        x = np.asarray(audio[-n:], np.float32)
        x = np.pad(x, (n - len(x), 0))
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        features = self._features(x, padding=0)[None].astype(np.float32)  # (1, 80, 800)
        [probability] = self._session.run(None, {"input_features": features})
        return float(np.asarray(probability).reshape(-1)[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def starter_path() -> Path:
    from talkgpt4all.models import cache_dir

    return cache_dir() / "smart-turn" / TURN_FILE


def fetch_starter() -> Path:
    """The model from pipecat-ai's wheel on PyPI (not its dependencies), checked, kept in the cache."""
    target = starter_path()
    if target.is_file() and _sha256(target) == TURN_SHA256:
        return target
    log.warning("fetching the turn model %s from the %s wheel on PyPI (once)", TURN_FILE, PIPECAT_WHEEL)
    partial = target.with_suffix(".partial")
    files_from_wheel(PIPECAT_WHEEL, {PIPECAT_PATH: partial.name}, target.parent)
    if _sha256(partial) != TURN_SHA256:
        partial.unlink()
        raise ModelError(f"the turn model in {PIPECAT_WHEEL} is not the one expected (SHA-256 differs)")
    partial.replace(target)
    return target


def resolve_turn_model(spec: str | None) -> Path | None:
    """The Smart Turn model for --turn-model: a path, a file in models/, the Hugging Face cache or a
    download, or the starter copy. "none" is no model (the fixed --silence-ms). Without --turn-model, a
    model that cannot be had is a notice and no model; a model the user named that cannot be had is an
    error."""
    if spec is not None and spec.lower() == "none":
        return None
    if spec is None or spec in TURN_NAMES:
        if (MODELS_DIR / TURN_FILE).is_file():
            return MODELS_DIR / TURN_FILE
        repo, filename = TURN_REPO, TURN_FILE
    else:
        path = Path(spec).expanduser()
        for candidate in (path, MODELS_DIR / spec):
            if candidate.is_file():
                return candidate
        if "/" not in spec or not spec.endswith(".onnx") or spec.startswith((".", "/", "~")):
            raise ModelError(
                f"turn model not found: {spec}: pass an .onnx path, owner/repo/file.onnx, or none"
            )
        repo, filename = spec.rsplit("/", 1)
    got = _from_hub_or_starter(repo, filename)
    if isinstance(got, Path):
        return got
    if spec is not None:
        raise ModelError(
            f"cannot get the turn model {spec} ({got}): put {TURN_FILE} in models/, or pass --turn-model none"
        )
    log.warning("no turn model (%s): a pause of --silence-ms ends each turn", got)
    return None


def _from_hub_or_starter(repo: str, filename: str) -> Path | str:
    """The model from the Hugging Face cache or a download; Smart Turn also from the starter copy (in
    the cache, or fetched from PyPI). Else why it cannot be had."""
    from talkgpt4all.models import download_from_hub, from_hub_cache

    starter = (repo, filename) == (TURN_REPO, TURN_FILE)
    cached = from_hub_cache(repo, filename)
    if cached:
        return cached
    if starter and starter_path().is_file():
        return starter_path()
    got = download_from_hub(repo, filename, filename)
    if isinstance(got, Path) or not starter:
        return got
    try:
        return fetch_starter()
    except ModelError as exc:
        return f"{got}; {exc}"
