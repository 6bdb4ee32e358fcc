"""The conversation: a system prompt and the turns so far, trimmed to fit the model's context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from talkgpt4all.errors import TalkError

Message = dict[str, str]


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
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + self.turns

    def fit(self, count_tokens: Callable[[list[Message]], int], budget: int) -> list[Message]:
        """The messages to send, dropping the oldest turns until they take at most `budget` tokens.

        Turns are dropped from the front, a user turn with the reply that followed it, so the history
        never starts with a reply. Dropped turns are forgotten for good. The latest user turn is never
        dropped: if it alone does not fit, TalkError says so.
        """
        while True:
            messages = self.messages
            if count_tokens(messages) <= budget:
                return messages
            if len(self.turns) <= 1:
                raise TalkError(
                    f"that message is too long for the model's context ({budget} tokens for the prompt): "
                    "say something shorter, or raise --context"
                )
            del self.turns[0]
            while self.turns and self.turns[0]["role"] != "user":
                del self.turns[0]
