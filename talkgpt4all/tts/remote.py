"""Speech on a server: POST /v1/audio/speech (speaches, Kokoro-FastAPI, openedai-speech, OpenAI)."""

from __future__ import annotations

import io
import logging

import numpy as np

from talkgpt4all.audio import Audio
from talkgpt4all.server import Server

log = logging.getLogger("talkgpt4all")

READ_TIMEOUT = 60.0  # seconds for one sentence's audio
DEFAULT_MODEL = "tts-1"
DEFAULT_VOICE = "alloy"


class RemoteSynthesizer:
    def __init__(
        self, url: str, voice: str | None = None, model: str | None = None, api_key: str | None = None
    ) -> None:
        self.server = Server(
            url,
            api_key,
            what="speech server",
            url_flag="--tts-url",
            key_flag="--tts-api-key",
            hint="check --voice, --tts-model and --tts-url",
            read_timeout=READ_TIMEOUT,
        )
        self.voice, self.model = voice or DEFAULT_VOICE, model or DEFAULT_MODEL
        log.info("speech: %s, voice %s at %s", self.model, self.voice, self.server.url)

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        import soundfile as sf

        body = {"model": self.model, "input": text, "voice": self.voice, "response_format": "wav"}
        response = self.server.request("POST", "/audio/speech", json=body)
        try:
            samples, rate = sf.read(io.BytesIO(response.content), dtype="float32")
        except (sf.LibsndfileError, RuntimeError, TypeError):
            raise self.server.malformed("something that is not audio") from None
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        return Audio(np.ascontiguousarray(samples, dtype=np.float32), int(rate))
