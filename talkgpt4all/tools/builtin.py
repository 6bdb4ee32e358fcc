"""The built-in tools, each off unless named in --tools: the current date and time, and a timer that
speaks when it is due.

A timer is not a reply: when it is due, the loop gets an event of its own (`Due`), not a user turn, and
speaks it when no reply is playing (a reply in progress finishes first).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from talkgpt4all.tools import Tool

MAX_TIMER_S = 24 * 3600.0


def now_text(clock: Callable[[], dt.datetime] | None = None) -> dict[str, str]:
    """The local date and time, as a person says them, with the time zone."""
    now = (clock or (lambda: dt.datetime.now().astimezone()))()
    return {
        "date": now.strftime("%A %d %B %Y"),
        "time": now.strftime("%H:%M"),
        "time_zone": now.tzname() or "local",
        "iso": now.isoformat(timespec="seconds"),
    }


def time_tool(clock: Callable[[], dt.datetime] | None = None) -> Tool:
    return Tool(
        "get_time",
        "The current local date, time and time zone. Use it whenever the user asks the time, the day or "
        "the date.",
        {"type": "object", "properties": {}, "additionalProperties": False},
        lambda: now_text(clock),
    )


@dataclass(frozen=True)
class Due:
    """A timer's moment has come: what to say."""

    message: str
    set_for: float  # seconds it was set for


class Timers:
    """Timers that are running, each on a thread of its own that waits on an event: close() stops them
    all (the session's end), and nothing of them outlives it."""

    def __init__(self, on_due: Callable[[Due], None]) -> None:
        self.on_due = on_due
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def set(self, seconds: float, message: str = "") -> str:
        seconds = float(seconds)
        if not 0 < seconds <= MAX_TIMER_S:
            raise ValueError(f"a timer is for 1 second to 24 hours, not {seconds:g} s")
        due = Due(message.strip() or f"Your {_spoken(seconds)} timer is done.", seconds)
        thread = threading.Thread(target=self._wait, args=(seconds, due), name="timer", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return f"A timer is set for {_spoken(seconds)}; it will say: {due.message}"

    def _wait(self, seconds: float, due: Due) -> None:
        if not self._stop.wait(seconds):
            self.on_due(due)

    def running(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + 2.0
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _spoken(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} second" + ("" if seconds == 1 else "s")
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:g} minute" + ("" if minutes == 1 else "s")
    return f"{minutes / 60:g} hours"


def timer_tool(timers: Timers) -> Tool:
    return Tool(
        "set_timer",
        "Set a timer or a reminder. When it is due, the assistant says the message aloud.",
        {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "description": "how long from now, in seconds"},
                "message": {"type": "string", "description": "what to say when it is due"},
            },
            "required": ["seconds"],
            "additionalProperties": False,
        },
        timers.set,
    )


BUILTIN = {
    "time": "get_time: the current date, time and time zone",
    "timer": "set_timer: a timer or reminder that speaks when it is due",
}


def list_tools(on: tuple[str, ...]) -> str:
    """--list-tools: each built-in tool, and whether --tools turns it on."""
    lines = ["Built-in tools (turn them on with --tools NAME,...; none is on by default):"]
    for name, what in BUILTIN.items():
        lines.append(f"  {name:<8} {'on ' if name in on else 'off'}  {what}")
    return "\n".join(lines)
