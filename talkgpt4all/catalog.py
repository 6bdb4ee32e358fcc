"""Recommended chat models, by short name: `--model qwen2.5-1.5b` instead of a Hugging Face path.

Each is a Q4_K_M GGUF from its maker's (or a well-known quantizer's) repository on the Hugging Face Hub,
resolved like any `owner/repo/file.gguf`: models/, then the Hugging Face cache, then a download. Sizes
are the download and the memory a session takes at the default --context 4096, both rounded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    repo: str
    filename: str
    download_gb: float
    ram_gb: float
    languages: str
    note: str

    @property
    def hub_name(self) -> str:
        return f"{self.repo}/{self.filename}"


CATALOG: dict[str, Entry] = {
    "qwen2.5-0.5b": Entry(
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        0.5,
        1.0,
        "en, zh",
        "the smallest real one: fast on any laptop, simple answers",
    ),
    "qwen2.5-1.5b": Entry(
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        1.1,
        2.0,
        "en, zh",
        "the bilingual pick: good English and Chinese at conversational speed",
    ),
    "qwen2.5-3b": Entry(
        "Qwen/Qwen2.5-3B-Instruct-GGUF",
        "qwen2.5-3b-instruct-q4_k_m.gguf",
        2.1,
        3.5,
        "en, zh",
        "better answers, about half the speed of 1.5b",
    ),
    "llama3.2-1b": Entry(
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        0.8,
        1.5,
        "en",
        "English only, quick",
    ),
}
