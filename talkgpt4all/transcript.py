"""--transcript and --resume: one JSON object a turn, appended and made durable as the turn ends.

A line is written whole, flushed and fsynced, so a crash or a power cut loses at most the turn in
progress. Reading back skips a torn or unreadable line (with a warning) instead of losing the rest.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from talkgpt4all.errors import TalkError
from talkgpt4all.observers import TurnObserver

if TYPE_CHECKING:
    from talkgpt4all.pipeline import TurnResult

log = logging.getLogger("talkgpt4all")


@dataclass(frozen=True)
class PastTurn:
    """A turn read back from a transcript."""

    turn: int
    user: str
    reply: str
    cut_off: bool  # interrupted, or ended by a fault: the reply is what was said before that
    tools: list[dict[str, Any]] = field(default_factory=list)  # the calls the reply made, with results


def _tool_call(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("name"), str)
        and isinstance(record.get("arguments"), dict)
        and isinstance(record.get("result"), str)
    )


def _past_turn(record: Any) -> PastTurn | None:
    if not isinstance(record, dict):
        return None
    turn, user, reply = record.get("turn"), record.get("user"), record.get("reply", "")
    if not isinstance(turn, int) or not isinstance(user, str) or not isinstance(reply, str):
        return None
    tools = record.get("tools", [])
    if not isinstance(tools, list) or not all(_tool_call(call) for call in tools):
        return None
    cut_off = bool(record.get("interrupted") or record.get("error"))
    return PastTurn(turn, user, reply, cut_off=cut_off, tools=tools)


def read_transcript(path: Path) -> list[PastTurn]:
    """The turns in a transcript file, in order. A line that is not a whole turn is skipped, with a
    warning naming it; TalkError when the file cannot be read at all."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TalkError(
            f"no transcript at {path}: check the path, or start a conversation there with --transcript {path}"
        ) from None
    except OSError as exc:
        raise TalkError(f"cannot read --resume {path}: {exc.strerror}") from exc
    turns, skipped = [], []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            past = _past_turn(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            past = None
        if past is None:
            skipped.append(number)
            continue
        turns.append(past)
    if not turns:
        # Not a conversation to go on with (a wrong file, or an empty one): refused before anything is
        # written to it.
        raise TalkError(
            f"--resume {path} holds no turn of a conversation (is it a --transcript file?): check the path, "
            f"or start a new conversation there with --transcript {path}"
        )
    for number in skipped:
        log.warning("skipped line %d of %s: not a whole turn (cut short by a crash?)", number, path)
    return turns


class TranscriptWriter(TurnObserver):
    """Appends one JSON line a turn to a file, durably: written whole, flushed and fsynced. As an
    observer, each turn is kept as it ends, whether it was answered, cut off or failed."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torn = False
            if path.is_file() and path.stat().st_size > 0:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
            self._file: IO[str] = path.open("a", encoding="utf-8")
            if torn:
                # A line torn by a crash has no newline: start a fresh line, or the next turn would be
                # glued to it and lost with it.
                self._file.write("\n")
        except OSError as exc:
            raise TalkError(f"cannot write --transcript {path}: {exc.strerror}") from exc
        self.path = path

    def turn_ended(self, result: TurnResult) -> None:
        self.append(result.to_json())

    def append(self, line: str) -> None:
        try:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise TalkError(f"cannot write --transcript {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        self._file.close()
