"""Tools the model may call: their declarations in the OpenAI `tools` shape, the calls found in what a
model writes, and running a call with a timeout.

A tool is off unless the user turns it on (--tools, or MCP servers in the config file). A call's result
reaches the model as data, in the tool role, never as system text. A call that fails or takes too long is
a result too ("error: ..."), so the model can say so and the turn goes on.

What a model writes when it calls a tool depends on its chat template:
- Qwen2.5 (and Hermes-style templates): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
- Llama 3.2: a bare JSON object, `{"name": ..., "parameters": {...}}`, as the whole reply.
`CallFinder` takes a reply's text as it streams, passes on the text that is speech, and keeps the calls,
so a call's JSON is never shown or read aloud.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("talkgpt4all")

CALL_TIMEOUT = 10.0  # seconds a tool gets before its call is an error
RESULT_LIMIT = 4000  # characters of a result the model is given


@dataclass(frozen=True)
class Tool:
    """One tool: its name, what it does, the JSON schema of its arguments, and what runs it.

    destructive: it changes something (MCP's destructiveHint, or the config says so): the user is asked
    first."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[..., Any]
    destructive: bool = False
    # A tool that runs elsewhere (an MCP server's, on the event loop): starts the call and returns its
    # future, which cancel() stops; run() is then not used.
    start: Callable[..., concurrent.futures.Future[Any]] | None = None
    timeout: float = CALL_TIMEOUT
    source: str = "built-in"  # or the MCP server it comes from

    def schema(self) -> dict[str, Any]:
        """The tool in the OpenAI `tools` shape."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolCall:
    """A call the model wrote: the tool's name and its arguments."""

    name: str
    arguments: dict[str, Any]
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, **({"id": self.id} if self.id else {})}


@dataclass(frozen=True)
class ToolResult:
    """What a call gave (as text for the model), or why it failed."""

    call: ToolCall
    content: str
    error: bool = False


@dataclass
class Toolbox:
    """The tools turned on for a session, by name."""

    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(
                f"two tools are named {tool.name!r} ({self.tools[tool.name].source}, {tool.source})"
            )
        self.tools[tool.name] = tool

    def __bool__(self) -> bool:
        return bool(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    def call(
        self,
        call: ToolCall,
        cancelled: threading.Event | None = None,
        *,
        slow: float = float("inf"),
        on_slow: Callable[[], None] = lambda: None,
    ) -> ToolResult:
        """Run a call, at most its tool's timeout (or until cancelled): the result, or an error result
        that says in one line what went wrong. Never raises for the tool's own failures. A call still
        running after `slow` seconds calls on_slow, once (the voice says "One moment")."""
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(call, f"error: there is no tool {call.name!r} (the tools are: {known})", True)
        problem = check_arguments(call.arguments, tool.parameters)
        if problem is not None:
            return ToolResult(call, f"error: {problem}", True)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"tool-{tool.name}")
        try:
            future = tool.start(**call.arguments) if tool.start else pool.submit(tool.run, **call.arguments)
            began = time.monotonic()
            while True:
                try:
                    value = future.result(timeout=0.05)
                    break
                except concurrent.futures.TimeoutError:
                    waited = time.monotonic() - began
                    if waited >= slow:
                        slow = float("inf")
                        on_slow()
                    if cancelled is not None and cancelled.is_set():
                        future.cancel()
                        return ToolResult(call, "error: the call was cancelled", True)
                    if waited >= tool.timeout:
                        future.cancel()
                        return ToolResult(call, f"error: {tool.name} took more than {tool.timeout:g} s", True)
        except Exception as exc:  # the tool's own failure is the model's to hear of, in one line
            log.debug("tool %s failed", tool.name, exc_info=True)
            detail = " ".join(str(exc).split()) or type(exc).__name__
            return ToolResult(call, f"error: {tool.name} failed: {detail}", True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return ToolResult(call, as_text(value))


def as_text(value: Any) -> str:
    """A tool's result as the model gets it: text, JSON for anything else, cut at RESULT_LIMIT."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= RESULT_LIMIT else text[:RESULT_LIMIT] + " …(cut)"


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """Why these arguments do not fit the tool's schema (its required names and their plain types), or
    None. (A grammar keeps the in-process model's calls valid; a server's may not be.)"""
    if not isinstance(arguments, dict):
        return "the arguments are not a JSON object"
    properties = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in arguments]
    if missing:
        return f"missing argument {', '.join(missing)}"
    for name, value in arguments.items():
        if name not in properties:
            if schema.get("additionalProperties", True) is False:
                return f"unknown argument {name!r}"
            continue
        kind = properties[name].get("type")
        allowed = _JSON_TYPES.get(kind) if isinstance(kind, str) else None
        if allowed is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            return f"{name} should be a {kind}"
        if not isinstance(value, allowed):
            return f"{name} should be a{'n' if kind[0] in 'aeiou' else ''} {kind}"
    return None


# ---------------------------------------------------------------------------------------- finding calls

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


def parse_call(text: str) -> ToolCall | None:
    """A call written as JSON: {"name": ..., "arguments" or "parameters": {...}} (arguments may be a JSON
    string, as OpenAI's servers send them). None if it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(data["name"], arguments, str(data.get("id", "")))


class CallFinder:
    """Splits a streamed reply into speech and tool calls.

    feed() takes the next piece of text and returns what of it is speech, now; a `<tool_call>…</tool_call>`
    block is held back until it closes and becomes a call. A reply that begins with "{" is held back
    whole (Llama 3.2 writes a call as a bare JSON object): at the end it is a call, or, if it is not one,
    speech after all. flush() returns what is left as speech. The calls found are in `calls`."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self._held = ""
        self._inside = False
        self._bare: bool | None = None  # the reply is (so far) a bare JSON object
        self.broken: list[str] = []  # call blocks that were not valid calls (for the log)

    def feed(self, text: str) -> str:
        if self._bare is None:
            stripped = (self._held + text).lstrip()
            if not stripped:
                self._held += text
                return ""
            self._bare = stripped.startswith("{")
            text, self._held = self._held + text, ""
        if self._bare:
            self._held += text
            return ""
        return self._scan(text)

    def _scan(self, text: str) -> str:
        out: list[str] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._inside:
                end = buffer.find(_CLOSE)
                if end < 0:
                    self._held = buffer
                    return "".join(out)
                self._found(buffer[:end])
                buffer, self._inside = buffer[end + len(_CLOSE) :], False
                continue
            start = buffer.find(_OPEN)
            if start < 0:
                keep = _partial_tag(buffer)  # "<tool" at the end may be a tag's beginning
                out.append(buffer[: len(buffer) - keep])
                self._held = buffer[len(buffer) - keep :]
                return "".join(out)
            out.append(buffer[:start])
            buffer, self._inside = buffer[start + len(_OPEN) :], True
        return "".join(out)

    def _found(self, block: str) -> None:
        call = parse_call(block.strip())
        if call is None:
            self.broken.append(block)
            log.debug("a tool call that is not one: %r", block)
        else:
            self.calls.append(call)

    def flush(self) -> str:
        held, self._held = self._held, ""
        if self._bare:
            calls = [parse_call(line) for line in _json_objects(held)]
            if held.strip() and all(calls):
                self.calls += [c for c in calls if c is not None]
                return ""
            return held  # not a call after all: it was said
        if self._inside:
            self._found(held)
            return ""
        return held


def _partial_tag(text: str) -> int:
    """How many characters at the end of text could begin a <tool_call> tag."""
    for n in range(min(len(_OPEN) - 1, len(text)), 0, -1):
        if _OPEN.startswith(text[-n:]):
            return n
    return 0


def _json_objects(text: str) -> Iterator[str]:
    """The JSON objects one after another in text (Llama 3.2 may write two calls, separated by ';' or
    new lines)."""
    decoder = json.JSONDecoder()
    position, text = 0, text.strip()
    while position < len(text):
        while position < len(text) and text[position] in " \t\r\n;,":
            position += 1
        if position >= len(text):
            return
        try:
            _, end = decoder.raw_decode(text, position)
        except ValueError:
            yield text[position:]
            return
        yield text[position:end]
        position = end


def find_calls(pieces: Iterable[str]) -> tuple[str, list[ToolCall]]:
    """A whole reply, split: its speech and its calls."""
    finder = CallFinder()
    speech = "".join(finder.feed(piece) for piece in pieces) + finder.flush()
    return speech, finder.calls


_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def valid_name(name: str) -> bool:
    """A tool name as the OpenAI shape allows it."""
    return bool(_NAME.match(name))


# ---------------------------------------------------------------------------------------- asking first

_YES = ("yes", "yeah", "yep", "yup", "sure", "ok", "okay", "go ahead", "do it", "please do", "of course")
_NO = ("no", "nope", "don't", "do not", "cancel", "stop", "never mind", "nevermind", "not now")
_YES_ZH = ("是", "好", "可以", "对", "行", "确定", "要", "嗯")
_NO_ZH = ("不", "别", "取消", "算了", "没有")
_MOST_WORDS = 6  # an answer longer than this is something else: the user moved on


def yes_or_no(text: str) -> bool | None:
    """The user's answer to "Shall I …? Say yes or no": True, False, or None when it is neither (then
    nothing is done, and the words are a turn of their own). A "no" wins over a "yes" it begins with
    ("no, don't")."""
    words = re.sub(r"[^\w\s']", " ", text.lower().replace("’", "'")).split()
    if not words:
        return None
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        han = "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
        if len(han) > 8:
            return None
        if han.startswith(_NO_ZH):
            return False
        return True if han.startswith(_YES_ZH) else None
    if len(words) > _MOST_WORDS:
        return None
    spoken = " ".join(words)
    for answers, meaning in ((_NO, False), (_YES, True)):
        if any(spoken == a or spoken.startswith(a + " ") for a in answers):
            return meaning
    return None


def confirm_question(calls: list[ToolCall], language: str) -> str:
    """What the assistant asks before a call that changes something: the tool, and what it is given,
    in words (never JSON)."""
    said = [_call_in_words(call) for call in calls]
    if language == "zh":
        return f"要我执行{'、'.join(said)}吗？请说“是”或“不”。"
    return f"Shall I {' and '.join(said)}? Say yes or no."


def _call_in_words(call: ToolCall) -> str:
    action = call.name.replace("_", " ").replace("-", " ").strip()
    given = [f"{name.replace('_', ' ')} {value}" for name, value in call.arguments.items() if value != ""]
    return f"{action}, with {', '.join(given)}" if given else action
