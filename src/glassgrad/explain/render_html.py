"""HTML rendering: one self-contained ``<div>`` (inline style), shown by Jupyter through
``_repr_html_``; with ``document=True`` a complete page (doctype, UTF-8, title) for a file."""

from __future__ import annotations

from html import escape
from typing import Any

from .doc import CheckBlock, Formula, Heading, Para, Table, blocks

STYLE = (
    ".gg-trace{font-family:system-ui,sans-serif;font-size:14px;line-height:1.4}"
    ".gg-trace table{border-collapse:collapse;margin:4px 0 10px}"
    ".gg-trace th,.gg-trace td{border:1px solid #ccc;padding:2px 8px}"
    ".gg-trace td.r{text-align:right;font-family:monospace}"
    ".gg-trace .formula{font-family:monospace;color:#333;background:#f6f6f6;padding:2px 6px}"
    ".gg-trace .ok{color:#197a2e}.gg-trace .fail{color:#b00020;font-weight:bold}"
    ".gg-trace .note{color:#1b5c8c}"
)
_CLASS = {True: "ok", False: "fail", None: "note"}
_MARK = {True: "✓", False: "✗", None: "•"}


def render_html(tr: Any, precision: int = 6, show_all: bool = False,
                document: bool = False) -> str:
    """The trace as an HTML fragment (a ``<div>``, for Jupyter), or with ``document`` a
    complete page: a file opened in a browser needs the doctype and the UTF-8 charset, or
    its ∂, δ and ⊙ show as mojibake."""
    body = _fragment(tr, precision, show_all)
    if not document:
        return body
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(tr.title)}</title>\n</head>\n<body>\n{body}</body>\n</html>\n")


def _fragment(tr: Any, precision: int, show_all: bool) -> str:
    out = [f'<div class="gg-trace"><style>{STYLE}</style>']
    for b in blocks(tr, precision, show_all):
        if isinstance(b, Heading):
            level = min(b.level + 2, 6)  # h3..h5: a trace sits inside a notebook or a page
            out.append(f"<h{level}>{escape(b.text)}</h{level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{escape(b.text)}</p>")
        elif isinstance(b, Formula):
            out.append(f'<p><span class="formula">{escape(b.text)}</span></p>')
        elif isinstance(b, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f'<td class="{a}">{escape(c)}</td>'
                                 for c, a in zip(row, b.align)) + "</tr>"
                for row in b.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, CheckBlock):
            c = b.check
            items = "".join(f"<li>{escape(d)}</li>" for d in c.detail)
            out.append(f'<p class="{_CLASS[c.ok]}">{_MARK[c.ok]} {escape(c.title)}</p>'
                       f"<ul>{items}</ul>")
    out.append("</div>")
    return "\n".join(out) + "\n"
