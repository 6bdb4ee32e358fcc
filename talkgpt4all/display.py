"""What the user sees on the terminal: the conversation on stdout, notices and errors on stderr."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from talkgpt4all.errors import one_line
from talkgpt4all.pipeline import Display
from talkgpt4all.text import clean

if TYPE_CHECKING:
    from talkgpt4all.pipeline import TurnResult
    from talkgpt4all.status import StatusLine

log = logging.getLogger("talkgpt4all")


WENT_ON = "(you went on: heard as one turn with what follows)"


class TerminalDisplay(Display):
    """The conversation on stdout: what the user said, then the reply as it is written.

    A terminal that has gone away (closed window, a pipe whose reader quit) is not an error of the
    conversation: the display falls silent, and the turn goes on to the transcript and the speaker.
    """

    def __init__(self, show_timings: bool = False, status: StatusLine | None = None) -> None:
        from rich.console import Console

        # Text is shown as it is: no markup, no ":emoji:" codes, no highlighting. (What the model writes is
        # made safe for the terminal before it gets here: see text.clean.)
        self.out = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)
        self.show_timings = show_timings
        self.status = status  # interactive: cleared before anything prints, "speaking" after a reply
        self._started = False
        self._ended_line = False  # the reply's line was ended when its text was complete
        self.gone = False

    def _safely(self, show: Callable[[], None]) -> None:
        if self.gone:
            return
        if self.status is not None:
            self.status.clear()
        try:
            show()
        except (OSError, ValueError) as exc:  # EIO, EPIPE, or a stream already closed
            self.gone = True
            log.debug("the terminal went away: %s", exc)

    def turn_started(self, result: TurnResult) -> None:
        def show() -> None:
            self.out.print("You: ", style="bold cyan", end="")
            self.out.print(result.user)

        self._started = self._ended_line = False
        self._safely(show)

    def reply_written(self, speaking: bool) -> None:
        """The reply's text is complete; with speaking, its voice plays on: the status line says so."""
        if not self._started or self.status is None:
            return

        def show() -> None:
            self.out.print()
            self.out.file.flush()

        self._safely(show)
        self._ended_line = True
        if speaking and not self.gone:
            self.status.show("speaking")

    def tool_started(self, name: str) -> None:
        """The status line says which tool the reply waits for (without one: a line on stderr)."""
        words = f"Using {name}…"
        if self.status is not None:
            if not self.gone:
                self.status.show("thinking", words=lambda: words)
            return
        self._safely(lambda: self.err.print(words, style="dim"))

    def reply_token(self, text: str) -> None:
        def show() -> None:
            if not self._started:
                self.out.print("AI: ", style="bold green", end="")
                self._started = True
            self.out.print(text, end="")
            self.out.file.flush()

        self._safely(show)

    def turn_ended(self, result: TurnResult) -> None:
        def show() -> None:
            if result.cut_off:
                if self._ended_line:  # cut off while its voice played: the text was all written
                    self.out.print("[interrupted]", style="dim", end="")
                elif not self._started:
                    self.out.print("AI:", style="bold green", end="")
                if not self._ended_line:
                    self.out.print(" [interrupted]", style="dim", end="")
            if (self._started and not self._ended_line) or result.cut_off:
                self.out.print()
            self.out.file.flush()
            if result.error:
                self.err.print(f"error: {result.error}")
            elif self.show_timings and not result.interrupted:
                self.err.print(format_timings(result), style="dim")

        self._safely(show)
        self._started = self._ended_line = False

    def turn_taken_back(self, result: TurnResult) -> None:
        """The user went on: what was shown of the turn is marked as not an answer."""

        def show() -> None:
            if self._started and not self._ended_line:
                self.out.print(" …", end="")
                self.out.print()
            self.out.print(WENT_ON, style="dim")
            self.out.file.flush()

        self._safely(show)
        self._started = self._ended_line = False

    def notice(self, text: str) -> None:
        """A line of its own. In the middle of a reply's line (a tool that failed), the line is ended
        first, and the rest of the reply begins a line of its own ("AI: ...")."""
        midline = self._started and not self._ended_line

        def show() -> None:
            if midline:
                self.out.print()
            self.out.print(clean(text), style="yellow")

        self._safely(show)
        if midline:
            self._started = False


def format_timings(result: TurnResult) -> str:
    """One line: each stage's time from the end of the user's speech."""
    t = result.timings
    parts = [
        ("endpoint", t.endpoint),
        ("stt", t.stt),
        ("first token", t.llm_first_token),
        ("first sentence", t.first_sentence),
        ("first audio", t.first_audio),
        ("total", t.total),
    ]
    shown = " · ".join(f"{name} {value:.2f}" for name, value in parts if value is not None)
    evaluated = "" if result.prompt_evaluated is None else f" ({result.prompt_evaluated} computed)"
    return one_line(f"⏱ {shown} s · {result.prompt_tokens} prompt tokens{evaluated}")
