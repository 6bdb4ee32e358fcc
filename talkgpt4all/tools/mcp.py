"""MCP servers as tools: the servers the config file names ([mcp.NAME]), through the official `mcp` SDK.

Each server is connected once, for the session, on one event loop that runs in a thread of its own (the
`mcp` thread, owned by `McpServers`: close() ends every connection, stops the servers it started, and
joins the thread). A model's call is sent to that loop and waited for on the tool's thread; cancelling it
(barge-in, Ctrl-C, the timeout) cancels the request on the loop.

A server that fails to start is one line, and the others go on. A server that dies is noticed when one of
its tools is called next: the call is an error (one line, and the model is told), and the server is
marked stopped so later calls fail at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkgpt4all.errors import TalkError
from talkgpt4all.settings import McpServer
from talkgpt4all.tools import Tool, valid_name

log = logging.getLogger("talkgpt4all")

START_TIMEOUT = 30.0  # seconds for all the servers to start and list their tools
INSTALL_HINT = 'MCP servers need the mcp package: pip install -e ".[tools]"'


class McpMissingError(TalkError):
    """The `mcp` package is not installed."""


class ToolFailed(Exception):
    """The server ran the tool, and the tool said it failed (isError)."""


@dataclass
class Connected:
    """One server, as it came up: its tools, or why it did not."""

    server: McpServer
    tools: list[Tool] = field(default_factory=list)
    problem: str | None = None
    skipped: list[str] = field(default_factory=list)  # tools left out: not in `tools`, or a bad name

    def line(self) -> str:
        """What startup says of it, in one line."""
        name = f"MCP server '{self.server.name}'"
        if self.problem is not None:
            if self.server.url is not None:
                name += f" at {self.server.url}"
            return f"{name} did not start: {self.problem}. Going on without it."
        asks = [tool.name for tool in self.tools if tool.destructive]
        said = f"{name}: {len(self.tools)} tool{'' if len(self.tools) == 1 else 's'}"
        said += f" ({', '.join(tool.name for tool in self.tools)})" if self.tools else ""
        if asks:
            said += f"; asks before {', '.join(asks)}"
        if self.skipped:
            said += f"; left out: {', '.join(self.skipped)}"
        return said + "."


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:
        raise McpMissingError(INSTALL_HINT) from exc
    return mcp


class McpServers:
    """The config file's MCP servers, connected on one event loop thread; a context manager."""

    def __init__(self, servers: tuple[McpServer, ...]) -> None:
        _import_mcp()
        self.servers = servers
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp", daemon=True)
        self._stop: asyncio.Event | None = None
        self._tasks: list[concurrent.futures.Future[None]] = []
        self._sessions: dict[str, Any] = {}
        self._stopped: dict[str, str] = {}  # server -> why it stopped
        self._ended: set[str] = set()  # servers whose task has unwound (their process stopped)
        self.connected: list[Connected] = []

    def start(self, timeout: float = START_TIMEOUT) -> list[Connected]:
        """Start and connect every server at once, and list their tools: one Connected each, in the
        config's order. Waits at most `timeout` seconds in all; a server not up by then is a problem."""
        self._thread.start()
        self._stop = asyncio.run_coroutine_threadsafe(_event(), self._loop).result()
        ready: list[concurrent.futures.Future[Connected]] = []
        for server in self.servers:
            up: concurrent.futures.Future[Connected] = concurrent.futures.Future()
            self._tasks.append(asyncio.run_coroutine_threadsafe(self._serve(server, up), self._loop))
            ready.append(up)
        concurrent.futures.wait(ready, timeout)
        self.connected = [
            up.result() if up.done() else Connected(server, problem=f"it did not answer within {timeout:g} s")
            for server, up in zip(self.servers, ready, strict=True)
        ]
        return self.connected

    def tools(self) -> list[Tool]:
        return [tool for up in self.connected for tool in up.tools]

    async def _serve(self, server: McpServer, up: concurrent.futures.Future[Connected]) -> None:
        """Connect, list the tools, then hold the connection until the session ends."""
        from mcp import ClientSession

        assert self._stop is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                errlog = None
                if server.command is not None:
                    path = log_path(server)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    errlog = stack.enter_context(path.open("w", encoding="utf-8", errors="replace"))
                read, write = await stack.enter_async_context(_transport(server, errlog))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
                self._sessions[server.name] = session
                if not up.done():
                    up.set_result(self._connected(server, listed.tools))
                await self._stop.wait()
        except BaseException as exc:
            why = _why(exc)
            if server.command is not None and not isinstance(exc, FileNotFoundError):
                why += f" (its log: {log_path(server)})"
            log.debug("MCP server %s: %s", server.name, why, exc_info=True)
            if not up.done():
                up.set_result(Connected(server, problem=why))
            elif not self._stop.is_set():
                self._stopped[server.name] = why
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._sessions.pop(server.name, None)
            self._ended.add(server.name)

    def _connected(self, server: McpServer, listed: list[Any]) -> Connected:
        up = Connected(server)
        for item in listed:
            if server.tools is not None and item.name not in server.tools:
                up.skipped.append(item.name)
                continue
            if not valid_name(item.name):
                up.skipped.append(item.name)
                continue
            annotations = item.annotations
            destructive = item.name in server.confirm or bool(
                annotations is not None and annotations.destructive_hint is True
            )
            up.tools.append(
                Tool(
                    item.name,
                    (item.description or item.name).strip(),
                    dict(item.input_schema or {"type": "object", "properties": {}}),
                    run=lambda: None,  # never run on a thread: start() sends it to the loop
                    start=self._starter(server, item.name),
                    destructive=destructive,
                    timeout=server.timeout,
                    source=f"MCP server '{server.name}'",
                )
            )
        return up

    def _starter(self, server: McpServer, name: str) -> Callable[..., concurrent.futures.Future[Any]]:
        def start(**arguments: Any) -> concurrent.futures.Future[Any]:
            return asyncio.run_coroutine_threadsafe(self._call(server, name, arguments), self._loop)

        return start

    async def _call(self, server: McpServer, name: str, arguments: dict[str, Any]) -> Any:
        session = self._sessions.get(server.name)
        if session is None:
            why = self._stopped.get(server.name, "it is not connected")
            raise ToolFailed(f"the MCP server '{server.name}' has stopped ({why})")
        try:
            # The SDK gives up a little after the Toolbox does, which says so in its own words.
            result = await session.call_tool(name, arguments, read_timeout_seconds=server.timeout + 5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            why = _why(exc)
            if isinstance(exc, (OSError, EOFError)) or "closed" in why.lower():
                self._stopped[server.name] = why
                self._sessions.pop(server.name, None)
                raise ToolFailed(f"the MCP server '{server.name}' has stopped ({why})") from exc
            raise
        text = _result_text(result)
        if getattr(result, "is_error", False):
            raise ToolFailed(text or "the tool said it failed")
        return text

    def close(self) -> None:
        """End every connection (the servers started here are stopped), then the loop and its thread."""
        if not self._thread.is_alive():
            self._loop.close()
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        # A connected server ends at once (its process is told to stop, and waited for); one still
        # starting (Ctrl-C during startup) is cancelled, and its process stopped as the task unwinds.
        for server, task in zip(self.servers, self._tasks, strict=False):
            if server.name not in self._sessions:
                task.cancel()
        _, stuck = concurrent.futures.wait(self._tasks, timeout=5.0)
        for task in stuck:
            task.cancel()
        deadline = time.monotonic() + 5.0
        while any(name not in self._ended for name in (s.name for s in self.servers)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> McpServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _event() -> asyncio.Event:
    return asyncio.Event()  # made on the loop it is awaited on


def _transport(server: McpServer, errlog: Any) -> Any:
    """The connection to a server: its process's stdin and stdout, or streamable HTTP."""
    if server.url is not None:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers=dict(server.headers)) if server.headers else None
        return streamable_http_client(server.url, http_client=client)
    from mcp import StdioServerParameters, stdio_client

    assert server.command is not None
    params = StdioServerParameters(
        command=os.path.expanduser(server.command),
        args=list(server.args),
        env=dict(server.env) or None,
        cwd=os.path.expanduser(server.cwd) if server.cwd else None,
    )
    return stdio_client(params, errlog=errlog)


def log_path(server: McpServer) -> Path:
    """Where a started server's stderr goes: a file of its own (kept for the next session to read), not
    the terminal, where it would scribble over the status line."""
    from talkgpt4all.models import cache_dir

    return cache_dir() / f"mcp-{server.name}.log"


def _result_text(result: Any) -> str:
    """A call's result as text: its text blocks, else its structured content as JSON."""
    import json

    texts = [block.text for block in getattr(result, "content", []) or [] if getattr(block, "text", None)]
    if texts:
        return "\n".join(texts)
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        return json.dumps(structured, ensure_ascii=False, default=str)
    return "done (no content)"


def _why(exc: BaseException) -> str:
    """An exception in a few words; a task group's (ExceptionGroup) by its first."""
    while getattr(exc, "exceptions", None):  # an ExceptionGroup (a backport's, before Python 3.11)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, FileNotFoundError):
        return f"no such command ({exc.filename or exc})"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def list_servers(servers: tuple[McpServer, ...]) -> list[str]:
    """--list-tools: each server's tools, connecting to each (one line each; a failure is one line)."""
    if not servers:
        return ["MCP servers: none (name them in the config file: [mcp.NAME] with a command or a url)."]
    try:
        with McpServers(servers) as connected:
            lines = ["MCP servers (from the config file; their tools are on while it names them):"]
            for up in connected.start():
                lines.append(f"  {up.line()}")
                for tool in up.tools:
                    summary = tool.description.splitlines()[0] if tool.description else ""
                    lines.append(f"    {tool.name:<20} {'asks first  ' if tool.destructive else ''}{summary}")
            return lines
    except McpMissingError as exc:
        return [f"MCP servers: {len(servers)} in the config file, but {exc}"]
