"""The status line: one line at the bottom of the terminal saying what the program is doing. While it
listens or records, a live level meter shows what the microphone hears, so a user sees that it works;
then "thinking", then "speaking" while the reply plays.

On a terminal the line is redrawn in place (about ten times a second while a meter runs) and cleared
before the conversation prints. When stderr is not a terminal (a pipe, a log file), each new state is
one plain line, with no meter and no escape codes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO

import numpy as np

from talkgpt4all.text import clean

METER_WIDTH = 12
METER_FLOOR_DB = -60.0  # a level this low (or lower) shows an empty meter; 0 dBFS a full one
REFRESH = 0.1  # seconds between redraws of a meter

# state: (mark, colour, words)
STATES = {
    "listening": ("●", "green", "Listening…"),
    "waiting": ("○", "green", "Waiting for the wake word"),  # with --wake: its words say which
    "hearing": ("●", "red", "Hearing you…"),
    "recording": ("●", "red", "Recording (Enter to stop)"),
    "thinking": ("◌", "yellow", "Thinking…"),
    "speaking": ("♪", "cyan", "Speaking… (Enter stops it)"),
    "speaking over": ("♪", "cyan", "Speaking… (talk, or press Enter, to stop it)"),  # with barge-in
}


def level_db(samples: np.ndarray) -> float:
    """The level of a piece of audio in dBFS (RMS; very quiet is METER_FLOOR_DB)."""
    if not len(samples):
        return METER_FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(METER_FLOOR_DB, 20 * float(np.log10(max(rms, 1e-9))))


def meter(db: float, width: int = METER_WIDTH) -> str:
    """A level as a bar: ▕████▌       ▏ (eighths of a cell)."""
    fraction = min(1.0, max(0.0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return "▕" + bar.ljust(width) + "▏"


class StatusLine:
    """What the program is doing, on stderr. Thread-safe: the loops set it, the display clears it."""

    def __init__(self, err: IO[str], terminal: bool | None = None) -> None:
        from rich.console import Console

        self.err = err
        if terminal is None:
            try:
                terminal = err.isatty()
            except (AttributeError, ValueError):
                terminal = False
        self.terminal = terminal
        self._console = Console(file=err, force_terminal=terminal, highlight=False, markup=False, emoji=False)
        self._lock = threading.Lock()
        self._state: str | None = None
        self._level: Callable[[], float] | None = None
        self._words: Callable[[], str] | None = None
        self._drawn = False
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.barge_in = False  # speaking over a reply stops it: "speaking" says so

    @property
    def state(self) -> str | None:
        return self._state

    def show(
        self, state: str, level: Callable[[], float] | None = None, words: Callable[[], str] | None = None
    ) -> None:
        """Say that the program is in this state (see STATES); level, the microphone's level in dBFS,
        drives a meter; words, if given, say it instead of the state's own (redrawn as they change)."""
        if state == "speaking" and self.barge_in:
            state = "speaking over"
        with self._lock:
            before = self._said()
            self._state, self._level, self._words = state, level, words
            if not self.terminal:
                said = self._said()
                if said is not None and said != before:
                    self._write(said + "\n")
                return
            self._draw()
        if (level is not None or words is not None) and self._thread is None:
            self._thread = threading.Thread(target=self._refresh, name="status", daemon=True)
            self._thread.start()
        self._wake.set()

    def _said(self) -> str | None:
        """The words of the state shown (the lock is held)."""
        if self._state is None:
            return None
        if self._words is not None:
            try:
                return clean(self._words())
            except Exception:  # a status line must never break the conversation
                pass
        return STATES[self._state][2]

    def clear(self) -> None:
        """Take the line away (before the conversation prints); the state is forgotten."""
        with self._lock:
            self._state, self._level, self._words = None, None, None
            if self._drawn:
                self._write("\r\x1b[2K")
                self._drawn = False

    def note(self, text: str) -> None:
        """A one-line notice, from any thread (a device came or went): printed above the line, which
        stays as it was."""
        with self._lock:
            if self._drawn:
                self._write("\r\x1b[2K")
                self._drawn = False
            self._write(clean(text) + "\n")
            if self.terminal and self._state is not None:
                self._draw()

    def close(self) -> None:
        self.clear()
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _draw(self) -> None:
        """Redraw in place (the lock is held)."""
        from rich.text import Text

        if self._state is None:
            return
        mark, colour, _ = STATES[self._state]
        line = Text()
        line.append(mark, style=colour)
        line.append(f" {self._said()}")
        if self._level is not None:
            try:
                db = self._level()
            except Exception:  # a meter must never break the conversation
                db = METER_FLOOR_DB
            line.append("  ")
            line.append(meter(db), style="cyan")
        try:
            self.err.write("\r\x1b[2K")
            self._console.print(line, end="")
            self.err.flush()
            self._drawn = True
        except (OSError, ValueError):  # the terminal went away
            self.terminal = False

    def _write(self, text: str) -> None:
        try:
            self.err.write(text)
            self.err.flush()
        except (OSError, ValueError):
            pass

    def _refresh(self) -> None:
        while not self._closed:
            self._wake.wait(REFRESH)
            self._wake.clear()
            with self._lock:
                if (self._level or self._words) is not None and self.terminal and not self._closed:
                    self._draw()
