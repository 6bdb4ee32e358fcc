"""The default speech-to-text engine: faster-whisper (CTranslate2), int8 on the CPU."""

from __future__ import annotations

import logging
import os

import numpy as np

from talkgpt4all.config import DEFAULT_WHISPER
from talkgpt4all.errors import ModelError
from talkgpt4all.models import resolve_whisper
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")

# Greedy decoding: on a laptop CPU it is about twice as fast as beam search, with near-equal
# accuracy on the short sentences of a conversation.
BEAM_SIZE = 1


class FasterWhisperTranscriber:
    def __init__(self, model: str | None, threads: int | None = None) -> None:
        from faster_whisper import WhisperModel

        # Only the default may fall back to a starter model; a model the user named is used or fails.
        path = resolve_whisper(model or DEFAULT_WHISPER, explicit=model is not None)
        try:
            self.model = WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=threads or os.cpu_count() or 0
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(
                f"cannot load the Whisper model at {path} ({exc}): pass another --whisper-model"
            ) from exc
        log.info("speech to text: faster-whisper %s", path)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        if not self.model.model.is_multilingual and language not in (None, "en"):
            log.warning("this Whisper model knows only English; ignoring --language %s", language)
            language = "en"
        segments, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=BEAM_SIZE,
            condition_on_previous_text=False,
            without_timestamps=True,  # a turn needs its text, not where each segment starts: fewer tokens
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=info.language)
