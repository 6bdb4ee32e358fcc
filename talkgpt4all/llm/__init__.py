"""Language models: one Protocol, and a registry from engine name to factory.

The conversation, trimming and sentence logic live elsewhere and are shared by every back end; an
engine only formats messages into its prompt, counts its tokens and streams text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from talkgpt4all.conversation import Message
from talkgpt4all.errors import UnknownEngineError

if TYPE_CHECKING:
    from talkgpt4all.config import Platform
    from talkgpt4all.settings import LanguageModel


@dataclass(frozen=True)
class GenerationOptions:
    """How one reply is written (from the language model's settings, settings.LanguageModel)."""

    max_tokens: int
    temperature: float
    seed: int  # -1: a new seed each run


class ChatModel(Protocol):
    context_size: int
    # Whether the back end keeps its cache when old turns are dropped from the prompt's middle (by
    # shifting the cached tokens after them into place), so a history trimmed one turn at a time costs
    # only the new tokens. Without it, only an unchanged prompt beginning is reused.
    shifts_context: bool

    @property
    def last_evaluated(self) -> int | None:
        """Tokens of the last prompt the model had to compute (the rest came from its cache); None when
        the back end does not say."""

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens the prompt for these messages takes, chat template included."""

    def stream(self, messages: list[Message], options: GenerationOptions) -> Generator[str, None, None]:
        """Reply to the messages, yielding text as it is generated. Closing the generator stops it."""

    def close(self) -> None:
        """Free the model, or stop the server process the back end started."""


@runtime_checkable
class CallsTools(Protocol):
    """A chat model that can be given tools (the OpenAI `tools` shape) and call them: it writes a call
    as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` text (or, with a Llama 3.2 template,
    as a bare JSON object), which talkgpt4all.tools.CallFinder takes out of the reply."""

    def tool_support(self) -> str | None:
        """None if tool calls work with this model; else why not, in a few words."""

    def stream(
        self,
        messages: list[Message],
        options: GenerationOptions,
        tools: list[dict[str, Any]] | None = None,
    ) -> Generator[str, None, None]:
        """ChatModel.stream(), with the tools the model may call."""


@runtime_checkable
class Prefills(Protocol):
    """A chat model that can compute a prompt into its cache ahead of the turn (speculation.py)."""

    def prefill(
        self, messages: list[Message], cancelled: threading.Event, tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Compute the prompt for these messages (with these tools), stopping between steps once
        `cancelled` is set; the prompt tokens computed. stream() with the same messages (and tools) then
        starts writing at once."""


def _llama_cpp(settings: LanguageModel, preset: Platform) -> ChatModel:
    from talkgpt4all.llm.llama_cpp import LlamaCppChatModel

    return LlamaCppChatModel(settings, gpu=preset.metal)


def _openai(settings: LanguageModel, preset: Platform) -> ChatModel:
    from talkgpt4all.errors import UsageError
    from talkgpt4all.llm.remote import OpenAIChatModel

    if not settings.url:
        raise UsageError("--llm openai needs --llm-url")  # settings.Config.check() says more, earlier
    return OpenAIChatModel(settings.url, settings.model, settings.api_key, settings.context)


def _binary(settings: LanguageModel, preset: Platform) -> ChatModel:
    from talkgpt4all.llm.binary import BinaryChatModel

    return BinaryChatModel(settings, preset)


def _gpt4all(settings: LanguageModel, preset: Platform) -> ChatModel:
    from talkgpt4all.llm.gpt4all_bindings import GPT4AllChatModel

    return GPT4AllChatModel(settings)


ENGINES: dict[str, Callable[[LanguageModel, Platform], ChatModel]] = {
    "llama-cpp": _llama_cpp,  # in process, through llama-cpp-python
    "openai": _openai,  # any OpenAI-compatible server
    "binary": _binary,  # bin/llama-server, started for the session
    "gpt4all": _gpt4all,  # the optional gpt4all package
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("llm", name, sorted(ENGINES))


def make_chat_model(settings: LanguageModel, preset: Platform) -> ChatModel:
    """Load the section's engine, with what the --platform preset says (Metal, the binary's name). The
    model loads here, once per session."""
    check_engine(settings.engine)
    return ENGINES[settings.engine](settings, preset)
