"""Text clean-up applied to every text before it is scored or trained on.

Review bodies arrive with HTML such as ``<br />``, ``<a href=...>`` and
entities like ``&amp;``. Cleaning removes the tags, keeps the text between
them, decodes entities and collapses whitespace, so that training and
production score the same string.
"""

import html
import re
import unicodedata

# A tag starts with a letter, "/" or "!", so "<3" or "a < b" survive while
# "<br />", "</a>" and "<!-- ... -->" do not.
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Return ``text`` without HTML tags and entities, NFC-normalised, with runs of whitespace as one space.

    Tags are replaced by a space, so "good<br />great" becomes "good great".
    Entities are decoded after the tags are removed, so an escaped "&lt;b&gt;"
    stays in the result as the literal text "<b>".
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    without_tags = _TAG.sub(" ", text)
    decoded = html.unescape(without_tags)
    normalized = unicodedata.normalize("NFC", decoded)
    return _WHITESPACE.sub(" ", normalized).strip()
