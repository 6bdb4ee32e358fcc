"""A small MCP server for the tests, on stdio, made with the `mcp` SDK's server side: notes kept in the file
that NOTES_FILE names, so a test sees a tool's effect on disk.

    python tests/mcp_notes_server.py        # NOTES_FILE=/tmp/notes.txt

Tools: add_note (writes), list_notes (reads), clear_notes (marked destructive: the client asks first),
slow_note (takes the seconds it is given), and crash (the server dies).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")
NOTES = Path(os.environ.get("NOTES_FILE", "notes.txt"))


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def add_note(text: str) -> str:
    """Add a note (a line of text) to the user's notes."""
    with NOTES.open("a", encoding="utf-8") as notes:
        notes.write(text.strip() + "\n")
    return f"Noted: {text.strip()}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> str:
    """The user's notes, one a line."""
    return NOTES.read_text(encoding="utf-8") if NOTES.exists() else "There are no notes."


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def clear_notes() -> str:
    """Delete all of the user's notes."""
    NOTES.unlink(missing_ok=True)
    return "All notes are deleted."


@server.tool()
def slow_note(seconds: float) -> str:
    """Wait, then say so (for the tests of slow calls)."""
    time.sleep(seconds)
    return f"waited {seconds:g} s"


@server.tool()
def crash() -> str:
    """The server dies."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
