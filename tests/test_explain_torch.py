"""The explain traces' numbers against PyTorch (float64), the oracle."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.explain import explain_expr, trace_net


def test_textbook_2_2_2_step_matches_pytorch_to_9_digits(torch):
    W1 = [[0.15, 0.20], [0.25, 0.30]]
    W2 = [[0.40, 0.45], [0.50, 0.55]]
    net = gg.nn.MLP([2, 2, 2], activation="sigmoid", output_activation="sigmoid",
                    init="constant:0", dtype=np.float64)
    net[0].weight.data, net[0].bias.data = np.array(W1), np.array([0.35, 0.35])
    net[2].weight.data, net[2].bias.data = np.array(W2), np.array([0.60, 0.60])
    tr = trace_net(net, [0.05, 0.10], [0.01, 0.99], loss="half-sse", lr=0.5)

    tnet = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid(),
                               torch.nn.Linear(2, 2), torch.nn.Sigmoid()).double()
    with torch.no_grad():
        for lin, w, b in ((tnet[0], W1, 0.35), (tnet[2], W2, 0.60)):
            lin.weight.copy_(torch.tensor(w, dtype=torch.float64))
            lin.bias.fill_(b)
    x = torch.tensor([[0.05, 0.10]], dtype=torch.float64)
    y = torch.tensor([[0.01, 0.99]], dtype=torch.float64)
    h = torch.sigmoid(tnet[0](x))
    h.retain_grad()
    out = torch.sigmoid(tnet[2](h))
    loss = 0.5 * ((out - y) ** 2).sum()
    loss.backward()
    opt = torch.optim.SGD(tnet.parameters(), lr=0.5)
    st = tr.steps[0]
    assert abs(st.loss - loss.item()) < 1e-12
    np.testing.assert_allclose(st.layers[0].a, h.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(st.layers[0].back, h.grad.numpy(), atol=1e-12)
    for ly, lin in zip(st.layers, (tnet[0], tnet[2])):
        np.testing.assert_allclose(ly.dW, lin.weight.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(ly.db, lin.bias.grad.numpy(), atol=1e-12)
    opt.step()
    for ly, lin in zip(st.layers, (tnet[0], tnet[2])):
        np.testing.assert_allclose(ly.W_after, lin.weight.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(ly.b_after, lin.bias.detach().numpy(), atol=1e-12)
    with torch.no_grad():
        after = 0.5 * ((tnet(x) - y) ** 2).sum().item()
    assert abs(st.loss_after - after) < 1e-12


def test_expression_gradients_match_pytorch(torch):
    tr = explain_expr("f = tanh(w * x + b) * sigmoid(x) - exp(-x) / sqrt(w) + x ** 3",
                      "x=0.3,w=1.7,b=-0.2")
    x, w, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for v in (0.3, 1.7, -0.2))
    f = torch.tanh(w * x + b) * torch.sigmoid(x) - torch.exp(-x) / torch.sqrt(w) + x ** 3
    f.backward()
    assert tr.root.value.item() == pytest.approx(f.item(), rel=1e-14)
    for name, t in (("x", x), ("w", w), ("b", b)):
        assert tr.grad(name).item() == pytest.approx(t.grad.item(), rel=1e-13)
