"""The errors a user can meet. Each message says what to do next; the CLI prints it as one line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class TalkError(Exception):
    """Base of every expected failure. The message is shown to the user as it is."""


class UsageError(TalkError):
    """The flags don't make sense together, found after parsing (exit 2, like argparse's own)."""


class UnknownEngineError(UsageError):
    def __init__(self, stage: str, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown {stage} engine {name!r}: choose one of {', '.join(valid)}")


class MissingDependencyError(TalkError):
    """An optional package or a system library/command is not installed."""


class ModelError(TalkError):
    """A model could not be found, downloaded or loaded."""


class AudioInputError(TalkError):
    """An input audio file could not be used."""


class DeviceError(TalkError):
    """A microphone or speaker could not be found or opened."""


class SpeechError(TalkError):
    """Text to speech failed."""


class PlatformError(TalkError):
    """The --platform preset does not match the machine."""


def one_line(text: str) -> str:
    """Fold a message onto one line, for stderr, with nothing a terminal would run (a server's error
    message may hold escape sequences)."""
    from talkgpt4all.text import clean

    return " ".join(clean(text).split())
