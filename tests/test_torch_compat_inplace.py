"""A PyTorch program with in-place ops on activations runs unchanged, with PyTorch's losses.

In the style of ``test_torch_compat_nn.py``: the same source runs under ``import torch`` and
under ``import glassgrad as torch``, from the same initial weights (``start(model)`` records
PyTorch's fresh state dict and loads it into glassgrad's model).
"""

import numpy as np
import pytest

TORCH_IMPORTS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
"""
GLASSGRAD_IMPORTS = """
import glassgrad as torch
import glassgrad.nn as nn
import glassgrad.nn.functional as F
import glassgrad.optim as optim
"""

# A small CNN with in-place updates on a hidden activation (+=, mul_, a column set to 0),
# then nn.ReLU(inplace=True) on it (after relu_, PyTorch refuses a further write: relu saved
# its result).
CNN_WITH_INPLACE_ACTIVATIONS = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        h = self.pool(torch.tanh(self.conv(x))).flatten(1)
        z = self.fc1(h)
        z += 0.1 * h.sum(dim=1, keepdim=True)
        z.mul_(0.5)
        z[:, 0] = 0.0
        return self.fc2(self.act(z))


model = Net()
start(model)
x, y = torch.tensor(X).view(-1, 1, 8, 8), torch.tensor(Y)
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for step in range(8):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
"""

# The VGG-style stack of the CNN tutorials: ReLU(inplace=True) right after each Conv2d
# (conv2d's backward never reads its result, so the in-place write is allowed, as in PyTorch).
VGG_STYLE_SEQUENTIAL = """
model = nn.Sequential(
    nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True),
    nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(6 * 4 * 4, 3),
)
start(model)
x, y = torch.tensor(X).view(-1, 1, 8, 8), torch.tensor(Y)
optimizer = optim.SGD(model.parameters(), lr=0.05)
for step in range(6):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
"""


def run_program(source, imports, start):
    data_rng = np.random.default_rng(11)
    namespace = {"X": data_rng.standard_normal((24, 64)).astype(np.float32),
                 "Y": data_rng.integers(0, 3, 24), "start": start, "losses": []}
    exec(imports + source, namespace)
    return namespace["losses"]


@pytest.mark.parametrize("source", [CNN_WITH_INPLACE_ACTIVATIONS, VGG_STYLE_SEQUENTIAL],
                         ids=["activation updates", "vgg-style sequential"])
def test_a_cnn_with_inplace_relu_and_activation_updates_has_torchs_losses(torch, source):
    recorded = {}

    def record(model):
        recorded.update({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})

    def replay(model):
        model.load_state_dict(recorded)

    theirs = run_program(source, TORCH_IMPORTS, record)
    ours = run_program(source, GLASSGRAD_IMPORTS, replay)
    assert len(ours) == len(theirs) >= 6
    assert theirs[-1] < theirs[0]  # it learns, so the comparison covers real updates
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-6)
