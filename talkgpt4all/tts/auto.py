"""--tts auto, Linux's default: a voice per language. Each reply is spoken by piper in a voice for its
language when one is on this machine or can be fetched once, and otherwise by espeak-ng.

Chinese is the exception: espeak-ng's Mandarin cannot be followed (it reads the tones as numbers), so a
Chinese reply with no piper voice is shown, not spoken, and one line says how to get a voice. A user who
wants espeak's Mandarin all the same asks for it with --tts espeak.
"""

from __future__ import annotations

import logging
from typing import Any

from talkgpt4all.audio import Audio
from talkgpt4all.errors import MissingDependencyError
from talkgpt4all.text import has_han

log = logging.getLogger("talkgpt4all")

PIPER_HINT = "pip install -e '.[piper]'"


class VoicePerLanguage:
    """piper where it has a voice for the reply's language, else espeak-ng (never for Chinese)."""

    def __init__(self, rate: int | None = None) -> None:
        from talkgpt4all.tts.commands import Espeak
        from talkgpt4all.tts.piper import Piper

        self.piper: Piper | None = None
        self.espeak: Espeak | None = None
        try:
            self.piper = Piper(None, rate)
        except MissingDependencyError:
            log.debug("piper is not installed: espeak-ng speaks (%s for natural voices)", PIPER_HINT)
        try:
            self.espeak = Espeak(None, rate)
        except MissingDependencyError:
            if self.piper is None:
                raise MissingDependencyError(
                    "no speech engine here: sudo apt-get install espeak-ng, or for natural voices "
                    f"{PIPER_HINT} (or pass --tts none)"
                ) from None
        self._told: set[str] = set()

    def _piper_voice(self, language: str) -> Any:
        return self.piper.find(language) if self.piper else None

    def synthesize(self, text: str, language: str | None = None) -> Audio:
        from talkgpt4all.tts.piper import SILENCE

        language = language or ("zh" if has_han(text) else "en")
        voice = self._piper_voice(language)
        if voice is not None and self.piper is not None:
            return self.piper.speak(voice, text)
        if language == "zh" or self.espeak is None:
            self._tell_once(language)
            return SILENCE
        return self.espeak.synthesize(text, language)

    def _tell_once(self, language: str) -> None:
        if language in self._told:
            return
        self._told.add(language)
        from talkgpt4all.tts.piper import missing_voice_note

        if self.piper is None:
            how = f"no voice for {language!r} here that can be understood: {PIPER_HINT} for piper voices"
        else:
            how = missing_voice_note(language)
        if language == "zh":
            how += " (or --tts espeak for espeak-ng's Mandarin, which is hard to follow)"
        log.warning("%s; those replies are shown, not spoken", how)
