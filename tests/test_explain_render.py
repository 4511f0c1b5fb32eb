"""Every rendered format of the explain traces: golden text/Markdown/LaTeX/DOT/JSON files for
the seeds' two worked examples and the textbook 2-2-2 net, HTML that parses, DOT that `dot`
renders, JSON that validates against the schema.

Regenerate the golden files after an intended change with
``GLASSGRAD_REGEN_GOLDEN=1 pytest tests/test_explain_render.py tests/test_explain_cli.py``
and review the diff.
"""

import html
import json
import subprocess
from html.parser import HTMLParser

import jsonschema
import numpy as np
import pytest

import glassgrad as gg
from glassgrad.explain import explain_expr, load_schema, render_graph, trace_net, validate


def seed_expr():
    return explain_expr("(x + y) * z", "x=-2,y=5,z=-4")


def seed_xor():
    net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    return trace_net(net, [0, 0], [0], loss="half-sse", lr=0.1)


def textbook_222():
    net = gg.nn.MLP([2, 2, 2], activation="sigmoid", output_activation="sigmoid",
                    init="constant:0", dtype=np.float64)
    net[0].weight.data = np.array([[0.15, 0.20], [0.25, 0.30]])
    net[0].bias.data = np.array([0.35, 0.35])
    net[2].weight.data = np.array([[0.40, 0.45], [0.50, 0.55]])
    net[2].bias.data = np.array([0.60, 0.60])
    return trace_net(net, [0.05, 0.10], [0.01, 0.99], loss="half-sse", lr=0.5)


def test_seed_expression_golden_text_markdown_latex_dot_json(golden):
    tr = seed_expr()
    text = tr.to_text()
    for line in ("  t1    x + y         3", "  f     t1 · z      -12",
                 "     2  f → t1            1  ∂(a·b)/∂a = b        -4    -4",
                 "  ∂f/∂x      -4", "  ∂f/∂z       3"):
        assert line in text
    golden("explain/seed_expr.txt", text)
    golden("explain/seed_expr.md", tr.to_markdown())
    golden("explain/seed_expr.tex", tr.to_latex())
    golden("explain/seed_expr.dot", tr.to_dot())
    golden("explain/seed_expr.json", tr.to_json())


def test_seed_xor_golden_text_markdown_latex_dot_json(golden):
    tr = seed_xor()
    text = tr.to_text()
    for line in ("  b¹[1]         1        1      4      4  -0.4    0.6",
                 "  W¹[1,1]       1        0      4      0     0      1",
                 "  W²[1,3]       1        1      4      4  -0.4    0.6",
                 "      2     1  1·1 + 1·1 + 1·1 + 1·1 = 4  4  4",
                 "sign slip of the seed XOR article"):
        assert line in text
    golden("explain/seed_xor.txt", text)
    golden("explain/seed_xor.md", tr.to_markdown())
    golden("explain/seed_xor.tex", tr.to_latex())
    golden("explain/seed_xor.dot", tr.to_dot())
    golden("explain/seed_xor.json", tr.to_json())


def test_textbook_222_golden_at_9_digits(golden):
    tr = textbook_222()
    text = tr.to_text(precision=9)
    for value in ("0.298371109", "0.35891648", "0.408666186", "0.51130127", "0.561370121",
                  "0.149780716", "0.199561432", "0.249751144", "0.299502287"):
        assert value in text
    golden("explain/textbook_222.txt", text)
    golden("explain/textbook_222.md", tr.to_markdown(precision=9))


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.cells = [], [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "td":
            self.cells.append(data)


@pytest.mark.parametrize("make", [seed_expr, seed_xor, textbook_222])
def test_html_parses_balanced_with_the_numbers_in_cells(make):
    tr = make()
    page = tr._repr_html_()
    assert page == tr.to_html()
    p = _Checker()
    p.feed(page)
    p.close()
    assert p.stack == [] and p.tags.count("table") >= 2 and "style" in p.tags
    if make is seed_expr:
        assert {"-12", "-4", "3", "∂(a·b)/∂a = b"} <= set(p.cells)
    if make is seed_xor:
        assert {"b¹[1]", "0.6", "-0.4"} <= set(p.cells)


@pytest.mark.needs_dot
@pytest.mark.parametrize("make", [seed_expr, seed_xor, textbook_222])
def test_dot_is_valid_graphviz(make):
    dot = make().to_dot()
    run = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    assert "<svg" in run.stdout and run.stderr == ""
    if make is seed_expr:
        svg = html.unescape(run.stdout)  # dot writes "-" as "&#45;"
        assert "grad -4" in svg and ">-12<" in svg


@pytest.mark.needs_dot
def test_render_graph_svg_png_and_atomic_file(tmp_path):
    tr = seed_expr()
    svg = render_graph(tr, "svg")
    assert svg.lstrip().startswith(b"<?xml") and b"grad 3" in svg
    out = tmp_path / "graph.png"
    png = render_graph(tr, "png", out)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and out.read_bytes() == png
    assert [p.name for p in tmp_path.iterdir()] == ["graph.png"]  # no temp file left


@pytest.mark.parametrize("make", [seed_expr, seed_xor, textbook_222])
def test_json_validates_against_the_schema(make):
    doc = json.loads(make().to_json())
    validate(doc)
    assert doc["schema"] == "glassgrad.explain/1"
    broken = dict(doc, kind="nope")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    missing = {k: v for k, v in doc.items() if k != "steps"}
    with pytest.raises(jsonschema.ValidationError):
        validate(missing)


def test_json_values_round_trip_and_non_finite_numbers_become_strings():
    doc = seed_xor().to_dict()
    layer = doc["steps"][0]["layers"][1]
    assert layer["W_after"] == [[0.6, 0.6, 0.6]] and doc["loss"]["reduction"] == "sum"
    with np.errstate(all="ignore"):
        tr = explain_expr("log(x) * y", "x=-1,y=2")
    doc = json.loads(tr.to_json())
    validate(doc)
    assert doc["nodes"][1]["value"] == "nan"
    assert load_schema()["$id"] == "glassgrad.explain/1"


def test_large_networks_and_long_traces_are_summarized_unless_show_all():
    tr = trace_net(gg.nn.MLP([3, 20, 2], activation="tanh", seed=0), [1, 2, 3], [0, 1])
    short, full = tr.to_text(), tr.to_text(show_all=True)
    assert "Large layers are summarized" in short and "…" in short
    forward = short.split("Backward pass")[0].split("Forward pass")[1]
    assert "     1    20" in forward and "     1    10" not in forward  # first 3, …, last 2
    assert "     1    10" in full
    assert "W¹[20,3]" in full and "W¹[10,2]" not in short and "W¹[10,2]" in full
    assert len(short.splitlines()) < len(full.splitlines()) / 2
    x = gg.tensor(1.0, requires_grad=True)
    with gg.explain.trace() as long:
        y = x
        for _ in range(30):
            y = y * 1.01
        y.backward()
    assert "more rows (show_all=True or --all)" in long.to_text()
    assert "more rows" not in long.to_text(show_all=True)


def test_many_steps_show_the_first_and_last_and_a_loss_table():
    net = gg.nn.MLP([2, 2, 1], activation="sigmoid", seed=0)
    tr = trace_net(net, [1, 0], [1], steps=5)
    text = tr.to_text()
    assert "Step 1" in text and "Step 5" in text and "Step 3" not in text
    assert "Steps 2–4 are left out" in text and "Loss per step" in text
    assert "Step 3" in tr.to_text(show_all=True)


def test_latex_braces_balance():
    for tr in (seed_expr(), seed_xor(), textbook_222()):
        tex = tr.to_latex()
        assert tex.startswith("\\begin{align*}") and tex.rstrip().endswith("\\end{align*}")
        depth = 0
        for i, c in enumerate(tex):
            if c in "{}" and tex[i - 1] != "\\":
                depth += 1 if c == "{" else -1
                assert depth >= 0
        assert depth == 0


def test_print_trace_on_a_terminal_and_in_a_pipe():
    import io

    from glassgrad.explain.render_text import print_trace

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tr = seed_expr()
    pipe, tty = io.StringIO(), Terminal()
    print_trace(tr, pipe)
    print_trace(tr, tty)  # rich tables where rich is installed, plain text otherwise
    assert pipe.getvalue() == tr.to_text()
    assert "Backward pass" in tty.getvalue() and "∂(a·b)/∂a = b" in tty.getvalue()


def test_large_values_are_summarized_unless_show_all():
    """A traced 64-sample, 16-unit layer prints shapes and ranges, not 64×16 numbers; with
    show_all every value's numbers come back (as the issue asks: summarize, flag to show all)."""
    X, y = gg.data.moons(64, seed=0)
    model = gg.nn.MLP([2, 16, 1], activation="tanh", seed=0)
    with gg.explain.trace() as tr:
        gg.nn.functional.mse_loss(model(gg.tensor(X)), gg.tensor(y[:, None] * 1.0)).backward()
    short, full = tr.to_text(), tr.to_text(show_all=True)
    hidden = tr.nodes[3].value  # linear(X, W, b): 64×16
    assert hidden.shape == (64, 16)
    assert f"64×16 values in [{hidden.min():.4g}, {hidden.max():.4g}]" in short
    assert "64×16 values in" not in full and f"{hidden[0, 0]:.6g}" in full
    assert max(map(len, short.splitlines())) < max(map(len, full.splitlines()))


@pytest.mark.usefixtures("rich")
def test_rich_terminal_output_keeps_brackets_literal():
    """On a terminal with rich installed the trace prints as rich tables; formulas such as
    getitem's ∂x[i]/∂x must not be read as rich markup ([i] is rich's italic tag)."""
    import io

    from glassgrad.explain.render_text import print_trace

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with gg.explain.trace() as tr:
        x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        (x[1] * 2).backward()
    out = Terminal()
    print_trace(tr, out)
    text = out.getvalue()
    assert "┃" in text  # rich's table, not the plain renderer
    assert "∂x[i]/∂x" in text and "Backward pass" in text
