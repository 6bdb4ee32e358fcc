"""The status line: what the program is doing, with a live level meter while it listens; plain lines
when stderr is not a terminal."""

from __future__ import annotations

import io
import time

import numpy as np

from talkgpt4all.status import METER_FLOOR_DB, StatusLine, level_db, meter


def test_the_meter_rests_in_silence_and_fills_with_sound():
    assert meter(METER_FLOOR_DB).strip("▕▏ ") == ""
    assert meter(level_db(np.zeros(512, np.float32))) == meter(METER_FLOOR_DB)
    loud = meter(level_db(np.full(512, 0.5, np.float32)))  # -6 dBFS
    assert loud.count("█") >= 9, loud
    assert len(loud) == len(meter(-30.0)) == len(meter(0.0))  # a steady width: the line does not jump


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_on_a_terminal_the_line_is_redrawn_with_the_level_as_it_changes_and_cleared():
    screen = Terminal()
    line = StatusLine(screen)
    level = {"db": METER_FLOOR_DB}
    line.show("listening", level=lambda: level["db"])
    assert "Listening" in screen.getvalue() and "█" not in screen.getvalue()
    level["db"] = -6.0  # someone speaks
    wait_for(lambda: "█" in screen.getvalue())  # redrawn by itself, without a new show()
    assert "\r\x1b[2K" in screen.getvalue()
    line.clear()
    assert screen.getvalue().endswith("\r\x1b[2K")
    written = len(screen.getvalue())
    time.sleep(0.3)
    assert len(screen.getvalue()) == written  # cleared: no meter drawn over the conversation
    line.close()


def test_off_a_terminal_each_state_is_one_plain_line():
    log = io.StringIO()
    line = StatusLine(log)
    assert not line.terminal
    for state in ("listening", "listening", "hearing", "thinking", "speaking", "listening"):
        line.show(state, level=lambda: -10.0)
    time.sleep(0.3)
    line.barge_in = True  # hands-free with barge-in: talking stops the reply too
    line.show("speaking")
    line.close()
    assert log.getvalue().splitlines() == [
        "Listening…",
        "Hearing you…",
        "Thinking…",
        "Speaking… (Enter stops it)",
        "Listening…",
        "Speaking… (talk, or press Enter, to stop it)",
    ]
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()


def test_a_level_that_fails_never_breaks_the_line():
    screen = Terminal()
    line = StatusLine(screen)

    def broken() -> float:
        raise OSError("the device went away")

    line.show("listening", level=broken)
    assert "Listening" in screen.getvalue()
    line.close()
    assert line._thread is not None and not line._thread.is_alive()  # no thread left behind
