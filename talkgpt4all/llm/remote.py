"""Any OpenAI-compatible chat server, streamed: ollama, llama-server, GPT4All Desktop, LM Studio, vLLM.

This is how a model that outgrows the laptop is used: the same program, pointed at a bigger machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from typing import Any

from talkgpt4all.conversation import Message, message_text
from talkgpt4all.llm import GenerationOptions
from talkgpt4all.server import Server, ServerError
from talkgpt4all.text import east_asian_chars

log = logging.getLogger("talkgpt4all")

READ_TIMEOUT = 120.0  # seconds between two pieces of a streamed reply (a big model's first token can be slow)


class LLMServerError(ServerError):
    """The LLM server could not be reached, refused the request, or stopped mid-reply."""


def estimate_tokens(messages: list[Message]) -> int:
    """A cautious token count for servers that don't tokenize for us: about 3 characters a token in
    Latin scripts, one a CJK character, and a few for each message's template."""
    total = 3
    for m in messages:
        text = message_text(m)
        cjk = east_asian_chars(text)
        total += 4 + cjk + (len(text) - cjk + 2) // 3
    return total


def evaluated_tokens(event: dict[str, Any]) -> int | None:
    """Prompt tokens the server computed for this reply, from the last event of its stream: llama-server
    says so in "timings"; OpenAI-style servers give "usage" with the cached part. None when not said."""
    timings = event.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("prompt_n"), int):
        return int(timings["prompt_n"])
    usage = event.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return int(usage["prompt_tokens"]) - (cached if isinstance(cached, int) else 0)
    return None


class OpenAIChatModel:
    """Streams /v1/chat/completions over HTTP (server-sent events).

    What the server keeps between turns is up to it. Most (llama-server, ollama) reuse the prompt's
    unchanged beginning; when old turns are dropped from the history, everything after the system
    prompt changes and is computed again. So this back end does not claim to shift its context: the
    history is trimmed in large steps (to half the budget), which makes that re-evaluation rare.
    """

    shifts_context = False

    def __init__(self, url: str, model: str | None, api_key: str | None, context: int):
        self._server = Server(
            url,
            api_key,
            what="LLM server",
            url_flag="--llm-url",
            key_flag="--llm-api-key",
            hint="check --model and --llm-url",
            read_timeout=READ_TIMEOUT,
            error=LLMServerError,
        )
        self.context_size = context
        self.last_evaluated: int | None = None
        self.tools_refused: str | None = None  # why the server would not take tools, once it said so
        self.model = model or self._first_model()
        log.info("language model: %s at %s", self.model, self.url)

    # -------------------------------------------------------------- HTTP

    @property
    def url(self) -> str:
        return self._server.url

    @url.setter
    def url(self, value: str) -> None:  # a restarted server (--llm binary) listens on a new port
        self._server.url = value.rstrip("/")

    def request(self, method: str, path: str, base: str | None = None, **kwargs: Any) -> Any:
        """An HTTP request to base (default: the API URL) + path; LLMServerError on failure."""
        return self._server.request(method, path, base, **kwargs)

    def _first_model(self) -> str:
        """The server's first model, for servers that serve one (llama-server) or when --model is left out."""
        data = self.request("GET", "/models").json().get("data") or []
        if not data:
            raise LLMServerError(f"the LLM server at {self.url} lists no models: pass --model NAME")
        return str(data[0]["id"])

    # -------------------------------------------------------------- ChatModel

    def count_tokens(self, messages: list[Message]) -> int:
        return estimate_tokens(messages)

    def tool_support(self) -> str | None:
        """None until the server refuses a request for its tools (ollama: "does not support tools";
        llama-server without --jinja: "tools param requires --jinja flag"); then why, and the
        conversation goes on without them."""
        return self.tools_refused

    def stream(
        self, messages: list[Message], options: GenerationOptions, tools: list[dict[str, Any]] | None = None
    ) -> Generator[str, None, None]:
        """The reply's text as it comes. With tools, the server's streamed tool calls (pieces of JSON
        by index) come at the end, each whole, as `<tool_call>{...}</tool_call>` text: the way the
        in-process models write them, for one CallFinder to take out (talkgpt4all/tools)."""
        import requests

        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
        }
        if options.seed >= 0:
            body["seed"] = options.seed
        if tools:
            body["tools"] = tools
        calls: dict[int, dict[str, str]] = {}
        self.last_evaluated = None
        response = self._post(body)
        if response is None:  # the server cannot take tools: asked again without them
            yield from self.stream(messages, options)
            return
        finished = False  # a finish_reason was sent (or "[DONE]"): the reply is whole
        try:
            for event in _events(response):
                if event is None:
                    finished = True
                    break
                evaluated = evaluated_tokens(event)
                if evaluated is not None:
                    self.last_evaluated = evaluated
                choices = event.get("choices") or []
                delta = (choices[0].get("delta") or {}) if choices else {}
                _gather(calls, delta.get("tool_calls") or [])
                finished = finished or bool(choices and choices[0].get("finish_reason"))
                if text := delta.get("content"):
                    yield text
            if finished:
                yield from _tool_calls(calls)
                return
            raise LLMServerError(f"the LLM server at {self.url} ended the reply without finishing it")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise LLMServerError(
                f"the LLM server at {self.url} stopped answering mid-reply: is it still running?"
            ) from exc
        except requests.Timeout as exc:
            raise LLMServerError(
                f"the LLM server at {self.url} stopped sending (timed out) mid-reply"
            ) from exc
        except (json.JSONDecodeError, AttributeError, TypeError) as exc:  # not JSON, or not shaped as one
            raise LLMServerError(
                f"the LLM server at {self.url} sent something that is not a chat stream"
            ) from exc
        finally:
            response.close()

    def _post(self, body: dict[str, Any]) -> Any:
        """The chat request, streamed; None when the server refused it for its tools (then
        tool_support() says why from now on)."""
        try:
            return self.request("POST", "/chat/completions", json=body, stream=True)
        except LLMServerError as exc:
            if not body.get("tools") or not _refuses_tools(str(exc)):
                raise
            self.tools_refused = f"the LLM server refused them ({_server_words(str(exc))})"
            log.info("%s", self.tools_refused)
            return None

    def close(self) -> None:
        self._server.http.close()


def _events(response: Any) -> Generator[dict[str, Any] | None, None, None]:
    """The stream's events, parsed; None for "[DONE]", the end. Bytes, decoded here: server-sent events
    are UTF-8 by definition, but a server that says only "text/event-stream" would be decoded by requests
    as ISO-8859-1 (café -> cafÃ©)."""
    for raw in response.iter_lines():
        line = raw.decode("utf-8", errors="replace")
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            yield None
            return
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise json.JSONDecodeError("not an object", payload, 0)
        yield event


def _gather(calls: dict[int, dict[str, str]], pieces: list[dict[str, Any]]) -> None:
    """Streamed tool calls come in pieces, by index: the id and name once, the arguments' JSON text in
    parts."""
    for piece in pieces:
        call = calls.setdefault(int(piece.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
        call["id"] = piece.get("id") or call["id"]
        function = piece.get("function") or {}
        call["name"] = function.get("name") or call["name"]
        call["arguments"] += function.get("arguments") or ""


def _tool_calls(calls: dict[int, dict[str, str]]) -> Generator[str, None, None]:
    for _, call in sorted(calls.items()):
        yield "<tool_call>" + json.dumps(call, ensure_ascii=False) + "</tool_call>"


def _refuses_tools(error: str) -> bool:
    """Whether a refused request was refused for its tools (the server's own words say so)."""
    words = error.lower()
    return "tool" in words and any(f" answered {code} " in words for code in (400, 422, 500, 501))


def _server_words(error: str) -> str:
    """The server's message out of LLMServerError's line: "... answered 400 MESSAGE: hint"."""
    _, _, rest = error.partition(" answered ")
    return rest.rsplit(": ", 1)[0] if rest else error
