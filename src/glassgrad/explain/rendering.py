"""``Rendered``: the output methods shared by both kinds of trace (op level and layer level).

Each renderer takes the trace and looks at ``trace.kind`` ("ops" or "net") itself, so a trace
class only needs to inherit these methods. The renderers read only the records
(``records.py``), so they sit below the trace classes and are imported here directly.
"""

from __future__ import annotations

from .export import to_dict, to_json
from .picture import to_dot
from .render_html import render_html
from .render_latex import render_latex
from .render_markdown import render_markdown
from .render_text import render_text


class Rendered:
    def to_text(self, precision: int = 6, show_all: bool = False) -> str:
        return render_text(self, precision=precision, show_all=show_all)

    def to_markdown(self, precision: int = 6, show_all: bool = False) -> str:
        return render_markdown(self, precision=precision, show_all=show_all)

    def to_html(self, precision: int = 6, show_all: bool = False,
                document: bool = False) -> str:
        """An HTML fragment for notebooks; ``document=True``: a complete page for a file."""
        return render_html(self, precision=precision, show_all=show_all, document=document)

    def to_latex(self, precision: int = 6, show_all: bool = False) -> str:
        return render_latex(self, precision=precision, show_all=show_all)

    def to_dict(self) -> dict:
        return to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self, indent=indent)

    def to_dot(self, precision: int = 4, show_all: bool = False) -> str:
        return to_dot(self, precision=precision, show_all=show_all)

    def _repr_html_(self) -> str:  # Jupyter shows a trace as its HTML tables
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()
