"""The conversation: a system prompt and the turns so far, trimmed to fit the model's context."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from talkgpt4all.errors import TalkError

# A chat message in the OpenAI shape: a role and its content; an assistant's tool calls ("tool_calls"),
# and a tool's result (role "tool", with "tool_call_id" and "name").
Message = dict[str, Any]

# Appended to a reply that was cut off (by the user, or by a fault), so the model knows it was.
CUT_OFF = " …"


@dataclass(frozen=True)
class Fitted:
    """The messages to send for a new user turn."""

    messages: list[Message]
    dropped: int  # how many stored messages, oldest first, the prompt leaves out
    tokens: int  # what the messages take, chat template included


class MessageTooLong(TalkError):
    """The new message does not fit in the context even with every older turn left out."""


@dataclass
class Conversation:
    """A multi-turn chat history. The system prompt is always kept; old turns go first."""

    system_prompt: str
    turns: list[Message] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        self.turns.append({"role": "user", "content": text})

    def add_assistant(self, text: str) -> None:
        self.turns.append({"role": "assistant", "content": text})

    @property
    def messages(self) -> list[Message]:
        return self._system() + self.turns

    def _system(self) -> list[Message]:
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def fit(
        self,
        user: str,
        count_tokens: Callable[[list[Message]], int],
        budget: int,
        target: int | None = None,
    ) -> Fitted:
        """The messages to send for a new user message, taking at most `budget` tokens.

        Nothing is changed here: the caller drops `dropped` turns with commit(), once the turn is
        done. When the history does not fit, the oldest turns are left out, a user turn with the reply
        that followed it, until the prompt takes at most `target` tokens (default: `budget`). A target
        well below the budget trims in large steps, so a back end that can reuse only the prompt's
        unchanged beginning re-evaluates it rarely. If the new message does not fit even alone,
        MessageTooLong says so, and nothing is lost.
        """
        pending = [{"role": "user", "content": user}]
        system = self._system()

        def count(start: int) -> int:
            return count_tokens(system + self.turns[start:] + pending)

        total = count(0)
        if total <= budget:
            return Fitted(system + self.turns + pending, 0, total)
        alone = count(len(self.turns))
        if alone > budget:
            raise MessageTooLong(
                f"that message is too long for the model's context (the prompt would take {alone} tokens, "
                f"and {budget} fit beside the longest reply): say something shorter, or raise --context"
            )
        goal = budget if target is None else min(target, budget)
        # Where the kept history may start: at a user turn, so it never opens with a reply; or after
        # everything. Fewer turns never take more tokens, so the first start that fits is found by
        # bisection: a long resumed history costs a few counts, not one per turn.
        starts = [i for i, m in enumerate(self.turns) if m["role"] == "user" and i > 0] + [len(self.turns)]
        lo, hi = 0, len(starts) - 1
        counts = {len(self.turns): alone}
        while lo < hi:
            mid = (lo + hi) // 2
            counts[starts[mid]] = tokens = count(starts[mid])
            if tokens <= goal:
                hi = mid
            else:
                lo = mid + 1
        start = starts[lo]  # counted: the last start (everything left out) is, and so is every mid
        return Fitted(system + self.turns[start:] + pending, start, counts[start])

    def commit(
        self,
        user: str,
        reply: str,
        *,
        cut_off: bool = False,
        dropped: int = 0,
        tools: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Keep a finished turn: forget the `dropped` oldest messages, then add the question, the tool
        calls the reply made with their results (see tool_messages), and the reply.

        A reply cut off by the user, or by a fault, is kept as far as it went, marked as cut off.
        """
        del self.turns[:dropped]
        self.add_user(user)
        self.turns.extend(tool_messages(tools))
        self.add_assistant(reply + CUT_OFF if cut_off else reply)


def tool_messages(calls: Sequence[dict[str, Any]]) -> list[Message]:
    """A turn's tool calls as the model is shown them: for each, the assistant's call, then its result,
    as data, in the tool role. calls: {"name", "arguments" (a dict), "result" (text), "id"?}, as the
    transcript keeps them."""
    messages: list[Message] = []
    for number, call in enumerate(calls, 1):
        call_id = str(call.get("id") or f"call_{number}")
        function = {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)}
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call_id, "name": call["name"], "content": call["result"]}
        )
    return messages


def message_text(message: Message) -> str:
    """All of a message's text, its tool calls included (for counting)."""
    text = str(message.get("content") or "")
    calls = message.get("tool_calls")
    return text + json.dumps(calls, ensure_ascii=False) if calls else text
