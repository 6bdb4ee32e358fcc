"""The optional openai-whisper engine (PyTorch). Install with: pip install 'talkgpt4all[openai-whisper]'."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import MissingDependencyError, ModelError
from talkgpt4all.language import most_probable
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")


class OpenAIWhisperTranscriber:
    def __init__(
        self, model: str, threads: int | None = None, languages: tuple[str, ...] | None = None
    ) -> None:
        self.languages = languages
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
        if language is None and self.languages is not None:
            language = self._detect(audio)
        result = self.model.transcribe(audio, language=language, fp16=False, condition_on_previous_text=False)
        return Transcript(text=str(result["text"]).strip(), language=result.get("language") or language)

    def _detect(self, audio: np.ndarray) -> str:
        """The likeliest of the allowed languages, from Whisper's probabilities over the first 30 s."""
        import whisper

        allowed = self.languages or ("en",)
        if not self.model.is_multilingual:
            return "en"
        if len(allowed) == 1:
            return allowed[0]
        mel = whisper.log_mel_spectrogram(
            whisper.pad_or_trim(np.asarray(audio, np.float32)), self.model.dims.n_mels
        ).to(self.model.device)
        _, probabilities = self.model.detect_language(mel)
        return most_probable(dict(probabilities).items(), allowed) or "en"
