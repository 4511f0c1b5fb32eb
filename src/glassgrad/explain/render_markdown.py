"""Markdown rendering: GitHub-flavoured tables, formulas in code spans, checks as a list."""

from __future__ import annotations

from typing import Any

from .doc import CheckBlock, Formula, Heading, Para, Table, blocks

MARK = {True: "✓", False: "✗", None: "•"}


def _cell(s: str) -> str:
    return s.replace("|", "\\|") or " "


def render_markdown(tr: Any, precision: int = 6, show_all: bool = False) -> str:
    out: list[str] = []
    for b in blocks(tr, precision, show_all):
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Formula):
            out.append(f"`{b.text}`")
        elif isinstance(b, Table):
            rule = ["---:" if a == "r" else ":---" for a in b.align]
            lines = [b.headers, rule, *b.rows]
            out.append("\n".join("| " + " | ".join(_cell(c) for c in row) + " |"
                                 for row in lines))
        elif isinstance(b, CheckBlock):
            c = b.check
            out.append("\n".join([f"- {MARK[c.ok]} **{c.title}**",
                                  *(f"  - {d}" for d in c.detail)]))
    return "\n\n".join(out) + "\n"
