"""Speech to text on a server: POST /v1/audio/transcriptions (speaches, vLLM's Whisper, OpenAI itself)."""

from __future__ import annotations

import io
import logging

import numpy as np

from talkgpt4all.audio import SAMPLE_RATE
from talkgpt4all.language import WHISPER_LANGUAGES
from talkgpt4all.server import Server
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")

READ_TIMEOUT = 60.0  # seconds for a turn's transcript
DEFAULT_MODEL = (
    "whisper-1"  # OpenAI's name; speaches and vLLM take their own (e.g. Systran/faster-whisper-base)
)
# verbose_json names the language in English on some servers (OpenAI: "chinese"): Whisper's codes.
_NAMES = {name: code for code, name in WHISPER_LANGUAGES.items()} | {"mandarin": "zh"}


def language_code(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    name = name.strip().lower()
    return _NAMES.get(name, name if len(name) <= 3 else None)


class RemoteTranscriber:
    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        languages: tuple[str, ...] | None = None,
    ) -> None:
        """languages: what a turn may be heard as (None: any). The server detects the language and gives
        no probabilities: a turn it hears in another language is asked again in the first of these."""
        self.languages = languages
        self.server = Server(
            url,
            api_key,
            what="speech-to-text server",
            url_flag="--stt-url",
            key_flag="--stt-api-key",
            hint="check --whisper-model (the server's model name) and --stt-url",
            read_timeout=READ_TIMEOUT,
        )
        self.model = model or DEFAULT_MODEL
        log.info("speech to text: %s at %s", self.model, self.server.url)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        allowed = self.languages
        if language is None and allowed is not None and len(allowed) == 1:
            language = allowed[0]
        heard = self._transcribe(audio, language)
        if allowed is not None and heard.language not in allowed:
            log.debug(
                "the server heard %s, not one of %s: asked again in %s", heard.language, allowed, allowed[0]
            )
            heard = self._transcribe(audio, allowed[0])
        return heard

    def _transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        import soundfile as sf

        wav = io.BytesIO()
        sf.write(wav, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        fields = {"model": self.model, "response_format": "verbose_json"}
        if language:
            fields["language"] = language
        response = self.server.request(
            "POST",
            "/audio/transcriptions",
            files={"file": ("speech.wav", wav.getvalue(), "audio/wav")},
            data=fields,
        )
        try:
            body = response.json()
            text = body["text"]
        except (ValueError, KeyError, TypeError):
            raise self.server.malformed('no transcript (a JSON body with "text")') from None
        if not isinstance(text, str):
            raise self.server.malformed("a transcript that is not text")
        return Transcript(text.strip(), language or language_code(body.get("language")))
