"""The optional openai-whisper engine (PyTorch). Install with: pip install 'talkgpt4all[openai-whisper]'."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import MissingDependencyError, ModelError
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")


class OpenAIWhisperTranscriber:
    def __init__(self, model: str, threads: int | None = None) -> None:
        try:
            import torch
            import whisper
        except ImportError as exc:
            raise MissingDependencyError(
                "--stt openai-whisper needs the openai-whisper package: "
                "pip install torch==2.13.0 'openai-whisper>=20240930' (or pip install -e '.[openai-whisper]')"
            ) from exc
        if threads:
            torch.set_num_threads(threads)
        path = Path(model).expanduser()
        local = path if path.suffix == ".pt" else MODELS_DIR / f"{model}.pt"
        if path.suffix == ".pt" and not path.is_file():
            raise ModelError(f"Whisper checkpoint not found: {path}: check the path given to --whisper-model")
        name = str(local) if local.is_file() else model
        try:
            self.model = whisper.load_model(name, device="cpu")
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load openai-whisper model {name!r} ({exc}): put a .pt checkpoint in models/ "
                "and pass --whisper-model PATH, or use the default --stt faster-whisper"
            ) from exc
        log.info("speech to text: openai-whisper %s", name)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        result = self.model.transcribe(audio, language=language, fp16=False, condition_on_previous_text=False)
        return Transcript(text=str(result["text"]).strip(), language=result.get("language") or language)
