"""The config file: TOML with the same keys as the flags, read before the flags.

    # ~/.config/talkgpt4all/config.toml (Linux; see --print-config for the path here)
    model = "models/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    vad = true
    zh-script = "traditional"

Flags win over the file, and the file over the defaults. `--config FILE` reads another file;
`--print-config` shows what is in effect, and where each value came from.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from talkgpt4all.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Flags that do something once rather than set how the program runs: not settings.
NOT_SETTINGS = {
    "help",
    "version",
    "config",
    "print_config",
    "list_devices",
    "list_models",
    "list_voices",
    "build_binary",
}


def default_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("talkgpt4all", appauthor=False)) / "config.toml"


def settings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The keys a file may set (the flags' long names without "--"), and their flags."""
    keys = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in NOT_SETTINGS:
            keys[longs[0][2:]] = action
    return keys


def load(path: Path, *, explicit: bool) -> dict[str, Any]:
    """The file's settings; {} when the default file does not exist. A named file must."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"--config {path}: no such file") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the config file {path}: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"the config file {path} is not valid TOML ({exc}): fix it, or move it away"
        ) from None


def _value(key: str, action: argparse.Action, value: Any, path: Path) -> Any:
    where = f"{key} in {path}"
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise UsageError(f"{where} is {value!r}: use true or false")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_one(where, action, item) for item in items]
    return _one(where, action, value)


def _one(where: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(value, (bool, dict, list)):
        raise UsageError(
            f"{where} is {value!r}: give it as on the command line, e.g. --{where.split()[0]} VALUE"
        )
    text = str(value)
    if action.type is not None and callable(action.type):
        try:
            converted = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise UsageError(f"{where}: {exc}") from None
    else:
        converted = text
    if action.choices is not None and converted not in action.choices:
        raise UsageError(f"{where} is {value!r}: use one of {', '.join(map(str, action.choices))}")
    return converted


def apply(parser: argparse.ArgumentParser, values: dict[str, Any], path: Path) -> dict[str, str]:
    """Make the file's settings the parser's defaults (so flags still win). Returns the file's keys,
    by the flags' destination."""
    keys = settings(parser)
    defaults, origin = {}, {}
    for key, value in values.items():
        action = keys.get(key) or keys.get(key.replace("_", "-"))
        if action is None:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]}?)" if close else " (the keys are the flags without --)"
            raise UsageError(f"{path} has an unknown key {key!r}{hint}")
        defaults[action.dest] = _value(key, action, value, path)
        origin[action.dest] = key
    parser.set_defaults(**defaults)
    return origin


def render(
    parser: argparse.ArgumentParser, args: argparse.Namespace, from_file: dict[str, str], path: Path
) -> str:
    """The settings in effect, as a config file, each with where it came from (after apply(), the
    parser's defaults are the file's values where it has them)."""
    lines = [f"# the settings in effect; the config file is {path}"]
    for key, action in settings(parser).items():
        value = getattr(args, action.dest, None)
        if value != parser.get_default(action.dest):
            source = "the command line"
        elif action.dest in from_file:
            source = "the config file"
        else:
            source = "default"
        if value is None or value == []:
            lines.append(f"# {key} = (not set)  # {source}")
        elif key.endswith("-key"):
            lines.append(f'{key} = "(hidden)"  # {source}')  # a secret is not for the screen
        else:
            lines.append(f"{key} = {_toml(value)}  # {source}")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
