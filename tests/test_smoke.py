"""A first check that the engine computes the seeds' example; the full suites live beside it."""

import glassgrad as gg


def test_seed_example_by_hand():
    x, y, z = (gg.tensor(v, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    q = x + y
    f = q * z
    f.backward()
    assert (q.item(), f.item()) == (3.0, -12.0)
    assert (x.grad.item(), y.grad.item(), z.grad.item()) == (-4.0, -4.0, 3.0)


def test_cli_ops_lists_every_op(capsys):
    from glassgrad.cli import main

    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name, op in gg.OPS.items():
        assert f"{name}" in out and op.formula in out
