"""Plain-text rendering (aligned tables) for terminals and logs; ``rich`` when it is a TTY."""

from __future__ import annotations

import sys
import textwrap
from typing import IO, Any

from .doc import CheckBlock, Formula, Heading, Para, Table, blocks
from .fmt import table

WIDTH = 100
MARK = {True: "✓", False: "✗", None: "•"}


def render_text(tr: Any, precision: int = 6, show_all: bool = False) -> str:
    """The trace as text: headings underlined, tables aligned, long lines wrapped."""
    lines: list[str] = []
    for b in blocks(tr, precision, show_all):
        if isinstance(b, Heading):
            if lines:
                lines.append("")
            lines.append(b.text)
            if b.level < 3:
                lines.append(("=" if b.level == 1 else "-") * len(b.text))
        elif isinstance(b, Para):
            lines.extend(textwrap.wrap(b.text, WIDTH, break_on_hyphens=False))
        elif isinstance(b, Formula):
            lines.append("  " + b.text)
        elif isinstance(b, Table):
            lines.extend("  " + line for line in table(b.headers, b.rows, b.align))
        elif isinstance(b, CheckBlock):
            c = b.check
            lines.extend(textwrap.wrap(f"{MARK[c.ok]} {c.title}", WIDTH,
                                       subsequent_indent="  ", break_on_hyphens=False))
            for d in c.detail:
                lines.extend(textwrap.wrap(d, WIDTH, initial_indent="    ",
                                           subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(lines) + "\n"


def print_trace(tr: Any, file: IO[str] | None = None, precision: int = 6,
                show_all: bool = False) -> None:
    """Print the trace: with ``rich`` tables when ``file`` is a terminal and rich is
    installed, as plain text otherwise (pipes, logs, notebooks)."""
    file = file or sys.stdout
    if getattr(file, "isatty", lambda: False)():
        try:
            import rich  # noqa: F401
        except ImportError:
            pass
        else:
            _print_rich(tr, file, precision, show_all)
            return
    file.write(render_text(tr, precision, show_all))


def _print_rich(tr: Any, file: IO[str], precision: int, show_all: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    # Trace text holds brackets of its own ("x[i]", "[1, 2]"): escape it, so that rich reads
    # markup only from the styles added here.
    console = Console(file=file)
    style = {True: "green", False: "bold red", None: "cyan"}
    for b in blocks(tr, precision, show_all):
        if isinstance(b, Heading):
            text = escape(b.text)
            console.print(f"\n[bold]{text}[/bold]" if b.level > 1 else
                          f"[bold underline]{text}[/bold underline]", highlight=False)
        elif isinstance(b, Para):
            console.print(b.text, markup=False, highlight=False)
        elif isinstance(b, Formula):
            console.print(f"  [italic]{escape(b.text)}[/italic]", highlight=False)
        elif isinstance(b, Table):
            t = RichTable(show_edge=False, header_style="bold")
            for h, a in zip(b.headers, b.align):
                t.add_column(Text(h), justify="right" if a == "r" else "left")
            for row in b.rows:
                t.add_row(*(Text(cell) for cell in row))
            console.print(t)
        elif isinstance(b, CheckBlock):
            c = b.check
            console.print(f"[{style[c.ok]}]{escape(MARK[c.ok] + ' ' + c.title)}[/{style[c.ok]}]",
                          highlight=False)
            for d in c.detail:
                console.print(f"    {d}", markup=False, highlight=False)
