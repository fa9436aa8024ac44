"""Text from outside (a visitor's file name, an uploaded avatar's notes) shown in markdown as the text it is."""

from __future__ import annotations

import html
import re

#: The most characters of one such text shown.
MAX_SHOWN_CHARS = 200


def escape_markdown(text: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as markdown that shows it as it is: on one line, cut to ``limit`` characters, markdown's
    punctuation escaped and HTML's as entities (no link, picture, formula or markup gets through)."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return html.escape(re.sub(r"([\\`*_{}\[\]()#+\-.!|~:$])", r"\\\1", text), quote=False)
