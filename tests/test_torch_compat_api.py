"""The everyday Tensor API in whole programs: each program is PyTorch code, run once under
``import torch`` and once under ``import glassgrad as torch`` (the same text), and what it
records (losses, sizes, values) must agree to float32 tolerance. Initial weights come from
the harness (``W``, or ``start(model)``, as in test_torch_compat_nn.py), so randomness plays
no part; the data comes from NumPy or ``linspace``."""

import numpy as np
import pytest

TORCH_IMPORTS = """
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
"""
GLASSGRAD_IMPORTS = """
import math
import glassgrad as torch
import glassgrad.nn as nn
import glassgrad.nn.functional as F
import glassgrad.optim as optim
"""

# "Learning PyTorch with examples": fit a cubic to sin(x) by hand-written gradient descent.
POLYNOMIAL_SIN = """
dtype = torch.float
device = torch.device("cpu")
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)
a = torch.tensor(W[0], device=device, dtype=dtype, requires_grad=True)
b = torch.tensor(W[1], device=device, dtype=dtype, requires_grad=True)
c = torch.tensor(W[2], device=device, dtype=dtype, requires_grad=True)
d = torch.tensor(W[3], device=device, dtype=dtype, requires_grad=True)
learning_rate = 1e-6
for t in range(300):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    if t % 10 == 9:
        losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None
losses.extend([a.item(), b.item(), c.item(), d.item()])
"""

# Tensor basics: a device picked the usual way, creation with dtype/device, size/view/numel,
# indexing with masks and index tensors, then a softmax classifier trained by hand with
# gather picking each row's log-probability.
TENSOR_BASICS = """
device = "cuda" if torch.cuda.is_available() else "cpu"
data = torch.tensor(X, dtype=torch.float32).to(device)
labels = torch.tensor(Y).long().to(device)
losses.extend([data.size(0), data.size()[1], data.numel(), data.dim(), len(data.shape)])
grid = torch.arange(12, dtype=torch.float32, device=device).view(3, 4)
losses.extend(grid.view(-1, 6).sum(1).tolist() + grid.T.reshape(2, 6)[1].tolist())
losses.append(torch.zeros(2, 3, device=device).numel() + torch.ones(2, dtype=torch.long).sum())
losses.append(torch.eye(3)[1].tolist() == [0.0, 1.0, 0.0])
losses.append(torch.full((2, 2), 0.5).double().sum().item())
first, second = data.chunk(2)
losses.extend([first.size(0), second[-1, 2].item(), data[labels == 1].size(0)])
losses.append(data[torch.tensor([0, 5, 7])].sum().item())
losses.append(data.split([10, 50])[0].mean().item())
w = torch.tensor(W3, requires_grad=True, device=device)
bias = torch.zeros(3, requires_grad=True, device=device)
for step in range(25):
    logits = data @ w + bias.view(1, 3).expand(data.size(0), -1)
    logp = F.log_softmax(logits, dim=1)
    picked = logp.gather(1, labels.view(-1, 1))
    loss = -picked.mean() + 0.01 * logits.masked_fill(logits < 0, 0.0).pow(2).mean()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        w -= 0.5 * w.grad
        bias -= 0.5 * bias.grad
    w.grad = None
    bias.grad = None
losses.append((logits.detach().argmax(1) == labels).float().mean().item())
"""

# Logistic regression with nn.Linear, BCEWithLogitsLoss and SGD; manual_seed at the top, as
# such programs start (the weights then come from start(model), so it changes nothing).
LOGISTIC_REGRESSION = """
torch.manual_seed(0)
x = torch.tensor(X)
y = torch.tensor(Y2).float().view(-1, 1)
model = nn.Linear(4, 1)
start(model)
criterion = nn.BCEWithLogitsLoss()
optimizer = optim.SGD(model.parameters(), lr=0.5)
for epoch in range(40):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
with torch.no_grad():
    predicted = (torch.sigmoid(model(x)) > 0.5).float()
    losses.append((predicted == y).float().mean().item())
    losses.extend(model.weight.view(-1).tolist())
"""

# "Training a classifier" (the CIFAR tutorial's shape, on 28×28 grey images): a small CNN
# with max pooling, view(-1, ...) before the linear layers, SGD with momentum.
CNN_CLASSIFIER = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 4 * 4)
        return self.fc2(F.relu(self.fc1(x)))


net = Net()
start(net)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
inputs, labels = torch.tensor(IMAGES), torch.tensor(LABELS)
for epoch in range(3):
    for i in range(0, len(inputs), 4):
        optimizer.zero_grad()
        outputs = net(inputs[i:i + 4])
        loss = criterion(outputs, labels[i:i + 4])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
with torch.no_grad():
    _, predicted = torch.max(net(inputs), 1)
losses.append((predicted == labels).sum().item())
"""

# PyTorch's meaning where NumPy's differs: transpose(0, 1), std with Bessel's correction,
# max(dim) as (values, indices), int / int as float, dim=/keepdim= on reductions.
SAME_NAMES_SAME_MEANING = """
x = torch.tensor(X)
xt = x.transpose(0, 1)
losses.extend(xt.size())
z = (x - x.mean(dim=0, keepdim=True)) / x.std(dim=0, keepdim=True)
losses.extend(z.std(0).tolist() + [x.var().item(), x.std(unbiased=False).item()])
values, indices = x.max(dim=1)
losses.extend(values.tolist()[:5] + indices.tolist()[:5])
losses.append((xt @ x).sum().item())
counts = torch.tensor([3, 4, 5])
ratio = counts / 2
losses.extend(ratio.tolist() + [ratio.dtype == torch.float32])
losses.extend(torch.cat([x, x], dim=1).sum(dim=1, keepdim=True).squeeze(1).tolist()[:3])
losses.extend(x.cumsum(dim=0)[-1].tolist() + [x.permute(1, 0).shape[0], x.T.shape[0]])
"""

PROGRAMS = {"polynomial fit to sin(x) by hand": POLYNOMIAL_SIN,
            "tensor basics and a hand-trained softmax classifier": TENSOR_BASICS,
            "logistic regression": LOGISTIC_REGRESSION,
            "a CNN classifier": CNN_CLASSIFIER,
            "names that mean what they mean in PyTorch": SAME_NAMES_SAME_MEANING}


def run_program(source, imports, start):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    namespace = {
        "X": X, "Y": rng.integers(0, 3, 60), "Y2": (X @ [1.0, -1.0, 0.5, 0.0] > 0).astype(int),
        "W": rng.standard_normal(4).astype(np.float32).tolist(),
        "W3": rng.standard_normal((4, 3)).astype(np.float32),
        "start": start, "losses": [],
    }
    # (drawn after the others, so the earlier programs' data stay as they were)
    namespace["IMAGES"] = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    namespace["LABELS"] = rng.integers(0, 3, 16)
    exec(imports + source, namespace)
    return namespace["losses"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_pytorch_program_runs_unchanged_with_the_same_results(torch, name):
    recorded = {}

    def record(model):
        recorded.update({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})

    def replay(model):
        model.load_state_dict(recorded)

    theirs = run_program(PROGRAMS[name], TORCH_IMPORTS, record)
    ours = run_program(PROGRAMS[name], GLASSGRAD_IMPORTS, replay)
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float),
                               rtol=2e-5, atol=1e-6)
