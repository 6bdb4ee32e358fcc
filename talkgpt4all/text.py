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
# Where a long first sentence may be cut early, so that speech starts sooner.
_LATIN_CLAUSE = re.compile(r"[,;:]+(?=\s)")
_CJK_CLAUSE = re.compile(r"[，、：]")
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


def _first_clause(text: str, min_words: int) -> int:
    """The index just past the first clause (a comma, colon, ...) after at least min_words words, or -1."""
    for pattern, count in ((_LATIN_CLAUSE, _words), (_CJK_CLAUSE, _cjk_chars)):
        for match in pattern.finditer(text):
            if count(text[: match.start()]) >= min_words:
                return match.end()
    return -1


def _words(text: str) -> int:
    return len(text.split())


def _cjk_chars(text: str) -> int:
    # A CJK character carries about as much as a short English word; count two as one.
    return sum(1 for ch in text if "\u3400" <= ch <= "\u9fff") // 2


def sentences(tokens: Iterable[str], first_clause_words: int | None = None) -> Iterator[str]:
    """Yield each sentence as soon as its last token arrives; the remainder is yielded at the end.

    With first_clause_words, the first piece may also end at a comma (or a colon, semicolon, "，" or
    "、") once it has that many words, so the first words can be spoken sooner.
    """
    buffer = ""
    first = first_clause_words is not None
    for token in tokens:
        buffer += token
        if first and first_clause_words is not None:
            clause, end = _first_clause(buffer, first_clause_words), _first_break(buffer)
            if clause > 0 and (end < 0 or clause < end):
                piece, buffer = buffer[:clause].strip(), buffer[clause:].lstrip()
                first = False
                yield piece
        while (cut := _first_break(buffer)) > 0:
            first = False
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
