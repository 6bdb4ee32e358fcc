"""Language models: one Protocol, and a registry from engine name to factory.

The conversation, trimming and sentence logic live elsewhere and are shared by every back end; an
engine only formats messages into its prompt, counts its tokens and streams text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from talkgpt4all.conversation import Message
from talkgpt4all.errors import UnknownEngineError


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 256
    temperature: float = 0.7
    seed: int = -1  # -1: a new seed each run


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

    def stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        """Reply to the messages, yielding text as it is generated. Closing the iterator stops it."""

    def close(self) -> None:
        """Free the model, or stop the server process the back end started."""


@dataclass(frozen=True)
class LLMSettings:
    model: str | None
    context: int = 4096
    threads: int | None = None
    seed: int = -1
    gpu: bool = False  # offload layers (Metal on Apple silicon)
    url: str | None = None  # --llm openai: the server's API base, e.g. http://127.0.0.1:11434/v1
    api_key: str | None = None
    binary: str | None = None  # --llm binary: an explicit server executable
    binary_name: str = "llama-server"  # else this name in bin/, from --platform
    context_shift: bool = True  # reuse the cache past dropped turns (llama-cpp, binary); off to compare


def _llama_cpp(settings: LLMSettings) -> ChatModel:
    from talkgpt4all.llm.llama_cpp import LlamaCppChatModel

    return LlamaCppChatModel(settings)


def _openai(settings: LLMSettings) -> ChatModel:
    from talkgpt4all.errors import TalkError
    from talkgpt4all.llm.remote import OpenAIChatModel

    if not settings.url:
        raise TalkError(
            "--llm openai needs --llm-url, e.g. http://127.0.0.1:11434/v1 (ollama), "
            "http://127.0.0.1:4891/v1 (GPT4All Desktop) or http://127.0.0.1:8080/v1 (llama-server)"
        )
    return OpenAIChatModel(settings.url, settings.model, settings.api_key, settings.context)


def _binary(settings: LLMSettings) -> ChatModel:
    from talkgpt4all.llm.binary import BinaryChatModel

    return BinaryChatModel(settings)


def _gpt4all(settings: LLMSettings) -> ChatModel:
    from talkgpt4all.llm.gpt4all_bindings import GPT4AllChatModel

    return GPT4AllChatModel(settings)


ENGINES: dict[str, Callable[[LLMSettings], ChatModel]] = {
    "llama-cpp": _llama_cpp,  # in process, through llama-cpp-python
    "openai": _openai,  # any OpenAI-compatible server
    "binary": _binary,  # bin/llama-server, started for the session
    "gpt4all": _gpt4all,  # the optional gpt4all package
}


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise UnknownEngineError("llm", name, sorted(ENGINES))


def make_chat_model(name: str, settings: LLMSettings) -> ChatModel:
    """Load the named engine. The model loads here, once per session."""
    check_engine(name)
    return ENGINES[name](settings)
