"""What the user sees on the terminal: the conversation on stdout, notices and errors on stderr."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from talkgpt4all.errors import one_line

if TYPE_CHECKING:
    from talkgpt4all.pipeline import TurnResult

log = logging.getLogger("talkgpt4all")


class TerminalDisplay:
    """The conversation on stdout: what the user said, then the reply as it is written.

    A terminal that has gone away (closed window, a pipe whose reader quit) is not an error of the
    conversation: the display falls silent, and the turn goes on to the transcript and the speaker.
    """

    def __init__(self, show_timings: bool = False) -> None:
        from rich.console import Console

        self.out = Console(highlight=False, markup=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
        self.show_timings = show_timings
        self._started = False
        self.gone = False

    def _safely(self, show: Callable[[], None]) -> None:
        if self.gone:
            return
        try:
            show()
        except (OSError, ValueError) as exc:  # EIO, EPIPE, or a stream already closed
            self.gone = True
            log.debug("the terminal went away: %s", exc)

    def turn_started(self, result: TurnResult) -> None:
        def show() -> None:
            self.out.print("You: ", style="bold cyan", end="")
            self.out.print(result.user)

        self._started = False
        self._safely(show)

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
                if not self._started:
                    self.out.print("AI:", style="bold green", end="")
                self.out.print(" [interrupted]", style="dim", end="")
            if self._started or result.cut_off:
                self.out.print()
            self.out.file.flush()
            if result.error:
                self.err.print(f"error: {result.error}")
            elif self.show_timings and not result.interrupted:
                self.err.print(format_timings(result), style="dim")

        self._safely(show)
        self._started = False

    def notice(self, text: str) -> None:
        self._safely(lambda: self.out.print(text, style="yellow"))


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
