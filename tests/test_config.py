"""The config file: the same keys as the flags; flags win over the file, the file over the defaults;
every mistake in it is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

from conftest import run_chat


def settings(run_stdout: str) -> dict[str, tuple[str, str]]:
    """--print-config's lines: key -> (value, where it came from)."""
    found = {}
    for line in run_stdout.splitlines():
        if line.startswith("#"):
            continue
        setting, source = line.rsplit("  # ", 1)
        key, value = setting.split(" = ", 1)
        found[key] = (value, source)
    return found


def test_flags_win_over_the_file_and_the_file_over_the_defaults(tmp_path: Path):
    config = tmp_path / "talk.toml"
    config.write_text('temperature = 0.2\nmax-tokens = 100\nvad = true\nzh-script = "traditional"\n')
    run = run_chat("--config", str(config), "--temperature", "0.5", "--print-config")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    shown = settings(run.stdout)
    assert shown["temperature"] == ("0.5", "the command line")
    assert shown["max-tokens"] == ("100", "the config file")
    assert shown["vad"] == ("true", "the config file")
    assert shown["zh-script"] == ('"traditional"', "the config file")
    assert shown["context"] == ("4096", "default")


def test_the_default_file_is_read_from_the_user_config_folder(tmp_path: Path):
    folder = tmp_path / "talkgpt4all"
    folder.mkdir()
    (folder / "config.toml").write_text('language = "zh"\nllm-api-key = "sk-secret"\n')
    run = run_chat("--print-config", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert settings(run.stdout)["language"] == ('"zh"', "the config file")
    assert "sk-secret" not in run.stdout  # a key is never printed
    assert str(folder / "config.toml") in run.stdout


def test_a_setting_from_the_file_takes_effect(tmp_path: Path):
    """Not only shown: a file that sets --text makes a run read lines from stdin."""
    config = tmp_path / "talk.toml"
    config.write_text('text = true\nno-play = true\ntemperature = 0\nmax-tokens = 16\ntts = "none"\n')
    run = run_chat("--config", str(config), stdin="Hello!\n")
    assert run.returncode == 0, run.stderr
    assert "You: Hello!" in run.stdout and "AI: " in run.stdout


def one_line(run_stderr: str) -> str:
    lines = [line for line in run_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run_stderr
    return lines[0]


def test_an_unknown_key_is_one_line_with_a_suggestion(tmp_path: Path):
    config = tmp_path / "talk.toml"
    config.write_text("temprature = 0.2\n")
    run = run_chat("--config", str(config), "--print-config")
    line = one_line(run.stderr)
    assert run.returncode == 2 and "temprature" in line and "did you mean temperature" in line, line


def test_a_malformed_file_is_one_line_naming_the_place(tmp_path: Path):
    config = tmp_path / "talk.toml"
    config.write_text("vad = true\nmodel = models/x.gguf\n")  # an unquoted string
    run = run_chat("--config", str(config), "--print-config")
    line = one_line(run.stderr)
    assert run.returncode == 2 and str(config) in line and "line 2" in line, line


def test_a_bad_value_is_one_line_like_the_flag_s(tmp_path: Path):
    for text, named in (
        ('temperature = "hot"\n', "temperature"),
        ("temperature = 9\n", "at most 2"),
        ('vad = "yes"\n', "true or false"),
        ('zh-script = "cursive"\n', "simplified, traditional"),
    ):
        config = tmp_path / "talk.toml"
        config.write_text(text)
        run = run_chat("--config", str(config), "--print-config")
        line = one_line(run.stderr)
        assert run.returncode == 2 and named in line, (text, line)


def test_a_named_config_file_that_is_missing_is_one_line(tmp_path: Path):
    run = run_chat("--config", str(tmp_path / "nope.toml"), "--print-config")
    line = one_line(run.stderr)
    assert run.returncode == 2 and "nope.toml" in line and "no such file" in line, line


def test_on_off_settings_take_true_or_false_in_the_file_and_either_flag_wins(tmp_path: Path):
    """aec and barge-in are flags with a --no- form; in the file, true or false."""
    config = tmp_path / "talk.toml"
    config.write_text("aec = false\nbarge-in = true\n")
    run = run_chat("--config", str(config), "--print-config")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    shown = settings(run.stdout)
    assert shown["aec"] == ("false", "the config file") and shown["barge-in"] == ("true", "the config file")
    run = run_chat("--config", str(config), "--aec", "--no-barge-in", "--print-config")
    shown = settings(run.stdout)
    assert shown["aec"] == ("true", "the command line") and shown["barge-in"] == ("false", "the command line")
    config.write_text('aec = "no"\n')
    run = run_chat("--config", str(config), "--print-config")
    assert run.returncode == 2 and "use true or false" in one_line(run.stderr), run.stderr


def test_every_setting_is_in_the_readme_and_help_shows_the_declared_defaults():
    """The settings are declared once (settings.py): --help is made from them, and the README names
    each flag."""
    from conftest import ROOT
    from talkgpt4all.settings import options

    readme = (ROOT / "README.md").read_text()
    missing = [option.flag for _, _, option in options() if f"`{option.flag}" not in readme]
    assert missing == [], f"flags the README does not mention: {missing}"
    run = run_chat("--help")
    assert run.returncode == 0
    help_text = " ".join(run.stdout.split())
    assert "context window in tokens, 128 to 1048576 (default: 4096)" in help_text
    assert "sampling temperature, 0 to 2 (default: 0.7)" in help_text
