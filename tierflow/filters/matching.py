"""String matching shared by both filter backends: case folding and RE2 patterns.

Regular expressions run on RE2 (google-re2), whose matching time is linear in the input, so a
pattern like `(a+)+$` cannot hang a query. The SQL backend calls these same functions (registered
on each SQLite connection), which is what keeps Python and SQL results identical.
"""

from __future__ import annotations

import re as _re
from functools import lru_cache
from typing import Any

import re2

_WORD_RE = _re.compile(r"[A-Za-z0-9_]+")
_NON_WORD = r"[^A-Za-z0-9_]"


def fold(text: str) -> str:
    """The case-insensitive form of a string: each character lower-cased on its own.

    Character by character (Unicode's simple mapping) rather than `str.lower`, whose full
    mapping turns 'İ' into two code points and 'Σ' into 'ς' at a word's end: PostgreSQL's
    `lower()` does neither, and all backends must fold alike.
    """
    if text.isascii():
        return text.lower()
    return "".join(_fold_char(c) for c in text)


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return char.lower()[0]


@lru_cache(maxsize=512)
def compile_pattern(pattern: str, *, case_sensitive: bool) -> Any:
    """Compile an RE2 pattern; raise ValueError with RE2's reason when it is not valid."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        raise ValueError(str(error)) from error


def text_patterns(query: str) -> list[str]:
    r"""RE2 patterns for a `text` query: one per word, each matching that whole word.

    RE2 has no look-ahead, so "every word, in any order" is the AND of one pattern per word.
    Word edges are spelled as explicit ASCII classes rather than `\b`: PostgreSQL's `\y` counts
    letters such as 'É' as word characters where RE2's `\b` does not, and both must agree.
    """
    return [rf"(^|{_NON_WORD}){_re.escape(word)}({_NON_WORD}|$)" for word in _WORD_RE.findall(query)]


def regex_search(pattern: str, case_sensitive: bool, value: str) -> bool:
    """True when `pattern` matches somewhere in `value`."""
    return compile_pattern(pattern, case_sensitive=case_sensitive).search(value) is not None
