"""Putting user text (class names, run names, paths) into Markdown so it stays plain text."""

from __future__ import annotations

import html
import re

# Punctuation that starts or ends Markdown syntax inside a line (emphasis, code, links, table
# cells, a heading's closing #s); a backslash makes each literal. < and > become entities.
_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def md_text(value: object) -> str:
    """``value`` as literal inline Markdown text, safe in a heading, a list or a table cell:
    line breaks become spaces, HTML tags show as text, and Markdown punctuation (pipes,
    backticks, #, emphasis, links) is escaped."""
    text = _LINE_BREAKS.sub(" ", str(value)).strip()
    text = html.escape(text, quote=False)  # <script> shows as text; & stays a literal &
    return _SPECIAL.sub(r"\\\1", text)


def md_code(value: object) -> str:
    """``value`` as an inline code span (shown verbatim; not for table cells): the fence is
    longer than any run of backticks in it and line breaks become spaces."""
    text = _LINE_BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"
