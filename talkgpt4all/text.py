"""Turning a stream of tokens into speakable sentences, in English and in CJK scripts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# A Latin sentence ends at . ! ? or … followed by white space; closing quotes and brackets stay with it.
_LATIN_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
# CJK sentence punctuation needs no following space.
_CJK_END = re.compile(r"[。！？；]+[」』”’）]*")
# A dot after these is not the end of a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m no fig approx inc ltd co u.s".split()
)
_MARKDOWN = re.compile(r"(\*\*|__|\*|`+|^#+\s*|^\s*[-*•]\s+)", re.MULTILINE)


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the dot at text[dot] closes an abbreviation or an initial rather than a sentence."""
    if text[dot] != "." or not text[:dot].strip():
        return False
    word = text[:dot].split()[-1].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _first_break(text: str) -> int:
    """The index just past the first sentence end in text, or -1 when no sentence is complete."""
    best = -1
    for match in _LATIN_END.finditer(text):
        if not _is_abbreviation(text, match.start()):
            best = match.end()
            break
    cjk = _CJK_END.search(text)
    if cjk and (best < 0 or cjk.end() < best):
        best = cjk.end()
    newline = text.find("\n")
    if newline > 0 and text[:newline].strip() and (best < 0 or newline < best):
        best = newline
    return best


def sentences(tokens: Iterable[str]) -> Iterator[str]:
    """Yield each sentence as soon as its last token arrives; the remainder is yielded at the end."""
    buffer = ""
    for token in tokens:
        buffer += token
        while (cut := _first_break(buffer)) > 0:
            sentence, buffer = buffer[:cut].strip(), buffer[cut:].lstrip()
            if sentence:
                yield sentence
    if buffer.strip():
        yield buffer.strip()


def speakable(text: str) -> str:
    """The text as it should be said: markdown marks dropped, white space folded."""
    return " ".join(_MARKDOWN.sub("", text).split())


def has_words(text: str) -> bool:
    """Whether there is anything to say (letters, digits or CJK characters)."""
    return any(ch.isalnum() for ch in text)
