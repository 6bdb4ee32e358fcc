"""The config file: TOML with the same keys as the flags, read before the flags, and the MCP servers
the model may use ([mcp.NAME] tables: settings.McpServer).

    # ~/.config/talkgpt4all/config.toml (Linux; see --print-config for the path here)
    model = "models/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    vad = true
    zh-script = "traditional"

Flags win over the file, and the file over the defaults. `--config FILE` reads another file;
`--print-config` shows what is in effect, and where each value came from. The keys and their checks are
the settings' own (settings.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from talkgpt4all.errors import UsageError
from talkgpt4all.settings import Config, McpServer, file_value, mcp_servers, options, shown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def default_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("talkgpt4all", appauthor=False)) / "config.toml"


def load(path: Path, *, explicit: bool) -> tuple[dict[str, dict[str, Any]], tuple[McpServer, ...]]:
    """The file's settings, by section, and its MCP servers ([mcp.NAME] tables); nothing when the default
    file does not exist. A named file must. Every key and value is checked: UsageError names the first
    mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"--config {path}: no such file") from None
        return {}, ()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the config file {path}: {exc}") from exc
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"the config file {path} is not valid TOML ({exc}): fix it, or move it away"
        ) from None
    servers = mcp_servers(values.pop("mcp"), str(path)) if "mcp" in values else ()
    given: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name, parsed = file_value(key, value, str(path))
        given.setdefault(section, {})[name] = parsed
    return given, servers


def render(config: Config, path: Path) -> str:
    """The settings in effect, as a config file, each with where it came from."""
    lines = [f"# the settings in effect; the config file is {path}"]
    for section, name, option in options():
        value = shown(section, name, option, getattr(getattr(config, section), name))
        source = config.source(section, name)
        if value is None or value == ():
            lines.append(f"# {option.key} = (not set)  # {source}")
        elif option.secret:
            lines.append(f'{option.key} = "(hidden)"  # {source}')  # a secret is not for the screen
        else:
            lines.append(f"{option.key} = {_toml(value)}  # {source}")
    for server in config.mcp:
        lines += ["", f"[mcp.{server.name}]  # the config file"]
        for key in ("command", "args", "url", "cwd", "tools", "confirm", "timeout"):
            value = getattr(server, key)
            if value is not None and value != () and not (key == "args" and server.url):
                lines.append(f"{key} = {_toml(value)}")
        for key in ("env", "headers"):  # their values may be keys: not for the screen
            if getattr(server, key):
                hidden = ", ".join(f'{name} = "(hidden)"' for name, _ in getattr(server, key))
                lines.append(f"{key} = {{ {hidden} }}")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
