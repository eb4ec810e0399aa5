"""Making any text a user can send safe to store, count and prompt with.

Chat platforms and terminals can hand over strings no UTF-8 encoder accepts (lone surrogates,
from invalid bytes decoded with ``surrogateescape`` or from UTF-16 halves) and control
characters (NUL, escape sequences) that mean nothing to the model. `clean_text` turns the first
into U+FFFD and drops the second, keeping tabs and line breaks.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced (a surrogate pair joined into its character),
    control characters other than tab and line breaks removed, and CR LF / CR made LF."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)
