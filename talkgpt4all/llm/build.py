"""--build-binary: compile llama.cpp's server for this machine into bin/, from source.

The source is the llama.cpp tree inside llama-cpp-python's source distribution on PyPI, at the version
installed here, so the server and the in-process engine run the same llama.cpp. A build is kept in the
cache and reused while that version stays the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from talkgpt4all.errors import MissingDependencyError, TalkError

log = logging.getLogger("talkgpt4all")

_PERCENT = re.compile(r"^\[\s*(\d+)%\]")
# ggml's AMX kernels die with SIGILL (at `tilezero`) on x86 CPUs that report AMX under some hypervisors,
# this project's CI machines among them. The build is native for this CPU otherwise (AVX-512 included).
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
BUILD_TAG = "noamx"  # part of the cache folder's name: a build with other flags is not reused


def cpu_tag() -> str:
    """A short hash of this CPU's feature flags. The build is native (-march=native), so it is reused
    only on a CPU like the one it was made for: a cache shared between machines must not hand an
    AVX-512 build to a CPU without AVX-512."""
    try:
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith(("flags", "Features"))
        )
    except (OSError, StopIteration):
        flags = f"{platform.system()} {platform.machine()} {platform.processor()}"
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


class BuildError(TalkError):
    pass


def _install_hint() -> str:
    if sys.platform == "darwin":
        return "xcode-select --install && brew install cmake"
    if sys.platform.startswith("win"):
        return "install Visual Studio Build Tools and CMake"
    return "sudo apt-get install cmake g++"


def _run(argv: list[str], cwd: Path, on_line: Callable[[str], None] | None = None) -> None:
    """Run a build step, passing each output line on; BuildError with the last lines if it fails."""
    tail: list[str] = []
    with subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-19:], line.rstrip()]
            if on_line:
                on_line(line.rstrip())
    if proc.returncode != 0:
        log.error("\n".join(tail))
        raise BuildError(f"`{' '.join(argv[:3])} …` failed (exit {proc.returncode}): see the lines above")


def build_llama_server(
    target: Path,
    cache: Path,
    progress: Callable[[str, int | None], None] = lambda step, percent: None,
    metal: bool = False,
) -> Path:
    """Build (or take from the cache) llama-server and copy it to target. progress(step, percent)."""
    for tool in ("cmake",):
        if shutil.which(tool) is None:
            raise MissingDependencyError(f"building llama.cpp needs {tool}: {_install_hint()}")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++") or shutil.which("cl")):
        raise MissingDependencyError(f"building llama.cpp needs a C++ compiler: {_install_hint()}")
    version = metadata.version("llama-cpp-python")
    cached = cache / f"llama-server-{version}-{BUILD_TAG}-{cpu_tag()}" / target.name
    if not cached.is_file():
        with tempfile.TemporaryDirectory(prefix="talkgpt4all-build-") as tmp:
            work = Path(tmp)
            progress(f"downloading the llama.cpp source (llama-cpp-python {version})", None)
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "-d",
                    str(work),
                    f"llama-cpp-python=={version}",
                ],
                work,
            )
            [archive] = list(work.glob("llama_cpp_python-*.tar.gz"))
            with tarfile.open(archive) as tar:
                tar.extractall(work, filter="data")
            source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
            build = work / "build"
            progress("configuring", None)
            flags = [
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
            ]
            if metal:
                flags.append("-DGGML_METAL=ON")
            if platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32":
                flags += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
            _run(["cmake", "-S", str(source), "-B", str(build), *flags], work)

            def on_line(line: str) -> None:
                match = _PERCENT.match(line)
                if match:
                    progress("compiling", int(match.group(1)))

            jobs = str(os.cpu_count() or 2)
            _run(
                [
                    "cmake",
                    "--build",
                    str(build),
                    "--config",
                    "Release",
                    "--target",
                    "llama-server",
                    "-j",
                    jobs,
                ],
                work,
                on_line,
            )
            built = next((p for p in build.rglob(target.name) if p.is_file()), None)
            if built is None:
                raise BuildError(f"the build finished but made no {target.name}: see {build}")
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, cached)
    else:
        progress(f"using the build of llama.cpp {version} from {cached.parent}", 100)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cached, target)
    return target
