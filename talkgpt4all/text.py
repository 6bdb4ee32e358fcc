"""Text from outside the program made safe to show, and a stream of tokens turned into speakable
sentences, in English and in CJK scripts."""

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
    return sum(1 for ch in text if script(ch) in ("han", "kana", "hangul")) // 2


# ------------------------------------------------------------------ East Asian scripts: the one detector

_SCRIPTS = (
    ("han", ("\u3400", "\u4dbf"), ("\u4e00", "\u9fff"), ("\uf900", "\ufaff")),
    ("kana", ("\u3040", "\u30ff"), ("\u31f0", "\u31ff")),
    ("hangul", ("\uac00", "\ud7af"), ("\u1100", "\u11ff"), ("\u3130", "\u318f")),
    ("cjk-symbols", ("\u3000", "\u303f"), ("\uff00", "\uffef")),  # punctuation, full-width forms
)


def script(ch: str) -> str | None:
    """The East Asian script of a character ("han", "kana", "hangul", "cjk-symbols"), or None."""
    if ch < "\u1100":
        return None
    for name, *ranges in _SCRIPTS:
        if any(lo <= ch <= hi for lo, hi in ranges):
            return name
    return None


def has_han(text: str) -> bool:
    """Whether the text holds Chinese characters (Hanzi, or Japanese kanji)."""
    return any(script(ch) == "han" for ch in text)


def east_asian_chars(text: str) -> int:
    """Characters written in an East Asian script: each is about one token, and one syllable."""
    return sum(1 for ch in text if script(ch) is not None)


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


def first_piece(pieces: list[str], first_clause_words: int | None, whole: bool) -> str | None:
    """The first piece sentences() makes of a reply that begins with these pieces, once it is complete:
    a break came after it, or (whole) the reply ends there. None while it may still grow."""
    exhausted = False

    def given() -> Iterator[str]:
        nonlocal exhausted
        yield from pieces
        exhausted = True

    for piece in sentences(given(), first_clause_words):
        return piece if whole or not exhausted else None
    return None


def speakable(text: str) -> str:
    """The text as it should be said: markdown marks dropped, white space folded."""
    return " ".join(_MARKDOWN.sub("", text).split())


def has_words(text: str) -> bool:
    """Whether there is anything to say (letters, digits or CJK characters)."""
    return any(ch.isalnum() for ch in text)


# ------------------------------------------------------------------ text that reaches the terminal

# Terminal escape and control sequences (ECMA-48), in their 7-bit (ESC ...) and 8-bit (C1) forms. A model
# or a server can write them, and a terminal runs them: a screen clear, a new window title (OSC 0), a
# write to the clipboard (OSC 52).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: cursor, colours, erase
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c)"  # OSC, DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-OQ-WYZ\\`a-~]",  # any other escape sequence (not the introducers above)
    re.DOTALL,
)
# The start of a sequence the next piece of a stream may complete.
_PARTIAL = re.compile(
    r"(?:\x1b(?:\[[0-?]*[ -/]*|[\]PX^_].*|[ -/]*)?|\x9b[0-?]*[ -/]*|[\x90\x98\x9d\x9e\x9f].*)\Z", re.DOTALL
)
# Controls left once the sequences are gone (tab and newline are text), and the bidirectional overrides
# that make a terminal show text in another order than it is written.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_HELD_MAX = 4096  # characters of an unfinished sequence held back; longer, it is not one


def clean(text: str) -> str:
    """Text as it may be shown: escape sequences and control characters removed (tab and newline
    kept), so that nothing in it is run by the terminal."""
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


class Cleaner:
    """clean() for a stream of pieces, where a sequence may be split between two pieces."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = _SEQUENCE.sub("", self._held + piece)
        partial = _PARTIAL.search(text)
        if partial is not None and len(text) - partial.start() <= _HELD_MAX:
            text, self._held = text[: partial.start()], text[partial.start() :]
        else:
            self._held = ""
        return _CONTROL.sub("", text)

    def flush(self) -> str:
        """What is held back at the end of the stream: an unfinished sequence, shown as text."""
        held, self._held = self._held, ""
        return _CONTROL.sub("", held)
