"""The default speech-to-text engine: faster-whisper (CTranslate2), int8 on the CPU.

A conversational turn is a few seconds long, but Whisper's encoder is built for 30 s windows, and
faster-whisper's transcribe() always encodes 30 s, then encodes them again to detect the language. Here a
turn that fits in one window is encoded once, over a window fitted to it (the speech and a little
padding), and that one encoder output serves both language detection and decoding. A longer utterance
goes through faster-whisper's own long-form path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from talkgpt4all.config import DEFAULT_WHISPER
from talkgpt4all.errors import ModelError
from talkgpt4all.language import most_probable
from talkgpt4all.models import resolve_whisper
from talkgpt4all.stt import Transcript

log = logging.getLogger("talkgpt4all")

# Greedy decoding: on a laptop CPU it is about twice as fast as beam search, with near-equal
# accuracy on the short sentences of a conversation.
BEAM_SIZE = 1
FULL_WINDOW = 3000  # frames of 10 ms: the 30 s window Whisper was trained on
ONE_WINDOW = FULL_WINDOW - 200  # frames: a longer utterance (28 s) goes through the long-form path


@dataclass(frozen=True)
class EncoderWindow:
    """How many 10 ms frames the encoder sees for an utterance of n frames: n plus `pad` frames of
    padding, at least `minimum`, at most the full 30 s. Too short a window makes Whisper mishear."""

    pad: int = 200
    minimum: int = 1000

    def frames(self, n: int) -> int:
        frames = min(FULL_WINDOW, max(self.minimum, n + self.pad))
        return frames + frames % 2  # the encoder halves the frame rate: an even count


FITTED = EncoderWindow()


class FasterWhisperTranscriber:
    """languages: what a turn may be heard as (None: any language); Whisper's likeliest of them is
    taken, so a turn is never written in a script the user does not read."""

    def __init__(
        self,
        model: str | None,
        threads: int | None = None,
        window: EncoderWindow = FITTED,
        languages: tuple[str, ...] | None = None,
    ) -> None:
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
        self.window = window
        self.languages = languages
        hearing = ",".join(languages or ["any language"])
        log.info("speech to text: faster-whisper %s, hearing %s", path, hearing)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        multilingual = self.model.model.is_multilingual
        if not multilingual and language not in (None, "en"):
            log.warning("this Whisper model knows only English; ignoring --language %s", language)
            language = "en"
        if language is None and self.languages is not None and len(self.languages) == 1:
            language = self.languages[0]  # one language: nothing to detect
        features = self.model.feature_extractor(audio)
        frames = features.shape[-1] - 1  # the last frame is the feature extractor's own padding
        if frames > ONE_WINDOW:
            return self._long_form(audio, language)
        return self._one_window(features, frames, language if multilingual else "en")

    def _one_window(self, features: np.ndarray, frames: int, language: str | None) -> Transcript:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        model = self.model
        window = np.zeros((features.shape[0], self.window.frames(frames)), np.float32)
        window[:, :frames] = features[:, :frames]
        encoded = model.encode(window)
        if language is None:
            ranked = model.model.detect_language(encoded)[0]  # ("<|zh|>", probability), likeliest first
            language = most_probable(((token[2:-2], p) for token, p in ranked), self.languages) or "en"
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, "transcribe", language)
        # faster-whisper's own defaults, as transcribe() would set them, with ours (greedy, no timestamps,
        # no conditioning: a turn is one short window).
        options = TranscriptionOptions(
            beam_size=BEAM_SIZE,
            best_of=5,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            compression_ratio_threshold=2.4,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=True,
            max_initial_timestamp=1.0,
            word_timestamps=False,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps="0",
            hallucination_silence_threshold=None,
            hotwords=None,
        )
        segments = model.generate_segments(features, tokenizer, options, False, encoded)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=language)

    def _long_form(self, audio: np.ndarray, language: str | None) -> Transcript:
        if language is None and self.languages is not None:
            _, _, ranked = self.model.detect_language(audio)  # over the first 30 s, as transcribe() would
            language = most_probable(ranked, self.languages) or "en"
        segments, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=BEAM_SIZE,
            condition_on_previous_text=False,
            # Timestamps let each 30 s window end where its last whole segment ends, so nothing is lost
            # at the seams (without them Whisper tends to stop early in a window and skip the rest).
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=info.language)
