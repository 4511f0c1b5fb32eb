"""glassgrad.utils.data against torch.utils.data: the same batches, lengths, collation and
errors; shuffling covers every sample once per epoch and is reproducible from a seed."""

from collections import namedtuple

import numpy as np
import pytest

import glassgrad as gg
import glassgrad.utils.data as gdata
from glassgrad.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    random_split,
)

X = np.arange(22, dtype=np.float32).reshape(11, 2)
Y = np.arange(11, dtype=np.int64) % 3


def as_numpy(batch):
    """A batch (tensors, lists, dicts) with every tensor as (dtype, array), for comparing."""
    if hasattr(batch, "numpy") and not isinstance(batch, np.ndarray):
        arr = batch.detach().numpy() if hasattr(batch, "detach") else batch.numpy()
        return (str(arr.dtype), arr.tolist())
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch).__name__, [as_numpy(b) for b in batch]
    return batch


def both(torch, make):
    """make(lib_data, tensor) in glassgrad and in torch, as comparable values."""
    ours = make(gdata, gg.tensor)
    theirs = make(torch.utils.data, torch.tensor)
    return ours, theirs


@pytest.mark.parametrize("kwargs", [
    {}, {"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": 11},
    {"batch_size": 20}, {"batch_size": None},
])
def test_tensor_dataset_batches_equal_torchs(torch, kwargs):
    ours, theirs = both(torch, lambda d, t: [
        as_numpy(b) for b in d.DataLoader(d.TensorDataset(t(X), t(Y)), **kwargs)])
    assert ours == theirs
    assert len(DataLoader(TensorDataset(X, Y), **kwargs)) == len(
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
            torch.tensor(X), torch.tensor(Y)), **kwargs))


SAMPLES = {
    "tuples of floats and ints": [(1.5, 2), (3.0, 4), (5.0, 6)],
    "numpy arrays": [np.ones(3, np.float32), np.zeros(3, np.float32), np.full(3, 2.0,
                                                                             np.float32)],
    "float64 arrays": [np.ones(2), np.zeros(2), np.ones(2)],
    "dicts": [{"x": np.float32(i), "label": i, "name": f"s{i}"} for i in range(3)],
    "lists": [[1, 2], [3, 4], [5, 6]],
    "bools": [True, False, True],
    "nested": [((np.ones(2, np.float32), 1), 0.5) for _ in range(3)],
}


@pytest.mark.parametrize("name", SAMPLES)
def test_default_collate_equals_torchs(torch, name):
    ours, theirs = both(torch, lambda d, t: [
        as_numpy(b) for b in d.DataLoader(SAMPLES[name], batch_size=2)])
    assert ours == theirs


def test_namedtuples_keep_their_type(torch):
    Point = namedtuple("Point", "x y")
    batch = default_collate([Point(1.0, 2), Point(3.0, 4)])
    assert isinstance(batch, Point) and batch.x.dtype == np.float64 and batch.y.tolist() == [2, 4]


def test_tensor_samples_that_need_gradients_stack_differentiably():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


@pytest.mark.parametrize("batch, error, words", [
    ([(1, 2), (3,)], RuntimeError, "equal size"),
    ([object(), object()], TypeError, "default_collate"),
    ([np.array(["a", "b"]), np.array(["c", "d"])], TypeError, "dtype"),
])
def test_default_collate_refuses_what_it_cannot_batch(batch, error, words):
    with pytest.raises(error, match=words):
        default_collate(batch)


def test_the_gather_path_gives_the_per_sample_batches():
    ds = TensorDataset(X, Y)
    sub = Subset(Subset(ds, [10, 3, 5, 7, 1, 0]), [5, 0, 2, 3])
    for dataset in (ds, sub):
        fast = DataLoader(dataset, batch_size=3, shuffle=True, generator=1)
        slow = DataLoader(dataset, batch_size=3, shuffle=True, generator=1,
                          collate_fn=lambda b: default_collate(b))
        assert fast._rows is not None and slow._rows is None
        assert [as_numpy(b) for b in fast] == [as_numpy(b) for b in slow]
    assert [yb.tolist() for _, yb in DataLoader(sub, batch_size=4)] == [[Y[0], Y[10], Y[5],
                                                                         Y[7]]]


def test_shuffle_reads_every_sample_once_a_new_order_each_epoch_reproducibly():
    loader = DataLoader(TensorDataset(X, np.arange(11)), batch_size=3, shuffle=True,
                        generator=0)
    epochs = [np.concatenate([yb.numpy() for _, yb in loader]) for _ in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(11))
    assert not np.array_equal(epochs[0], epochs[1])
    again = DataLoader(TensorDataset(X, np.arange(11)), batch_size=3, shuffle=True,
                       generator=0)
    assert np.array_equal(np.concatenate([yb.numpy() for _, yb in again]), epochs[0])
    assert [len(yb) for _, yb in loader] == [3, 3, 3, 2]


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.float32(i), i * i


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(7))


def test_custom_and_iterable_datasets_match_torch(torch):
    class TSquares(torch.utils.data.Dataset):
        __len__, __getitem__ = Squares.__len__, Squares.__getitem__

    class TStream(torch.utils.data.IterableDataset):
        __iter__ = Stream.__iter__

    for ours_ds, theirs_ds, kw in [(Squares(), TSquares(), {"batch_size": 2}),
                                   (Stream(), TStream(), {"batch_size": 3}),
                                   (Stream(), TStream(), {"batch_size": 3, "drop_last": True})]:
        ours = [as_numpy(b) for b in DataLoader(ours_ds, **kw)]
        theirs = [as_numpy(b) for b in torch.utils.data.DataLoader(theirs_ds, **kw)]
        assert ours == theirs


def test_concat_dataset_and_add(torch):
    a, b = TensorDataset(X[:3], Y[:3]), TensorDataset(X[3:5], Y[3:5])
    both_ds = a + b
    assert isinstance(both_ds, ConcatDataset) and len(both_ds) == 5
    assert [int(both_ds[i][1].item()) for i in range(-5, 5)] == Y[:5].tolist() * 2
    with pytest.raises(IndexError, match="out of range"):
        both_ds[5]


@pytest.mark.parametrize("lengths", [[3, 8], [0.5, 0.5], [0.33, 0.33, 0.34], [11], [0.1] * 10])
def test_random_split_lengths_equal_torchs_and_partition_the_data(torch, lengths):
    parts = random_split(range(11), lengths, generator=0)
    theirs = torch.utils.data.random_split(range(11), lengths)
    assert [len(p) for p in parts] == [len(p) for p in theirs]
    assert sorted(i for p in parts for i in p) == list(range(11))
    assert all(isinstance(p, Subset) for p in parts)
    again = random_split(range(11), lengths, generator=0)
    assert [list(p) for p in again] == [list(p) for p in parts]


@pytest.mark.parametrize("lengths, torch_refuses", [
    ([2, 2], True), ([0.5, 0.4], True), ([0.5, 0.6, -0.1], True),
    ([12, -1], False),  # torch makes a Subset of -1 samples
    ([5.5, 5.5], False),  # torch fails later, with a TypeError from randperm
])
def test_random_split_refuses_lengths_that_do_not_add_up(torch, lengths, torch_refuses):
    with pytest.raises(ValueError, match="random_split"):
        random_split(range(11), lengths)
    if torch_refuses:
        with pytest.raises(ValueError):
            torch.utils.data.random_split(range(11), lengths)


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0}, {"batch_size": -1}, {"batch_size": 2.5},
    {"shuffle": True, "sampler": [0, 1]},
    {"batch_sampler": [[0, 1]], "batch_size": 2},
    {"batch_sampler": [[0, 1]], "drop_last": True},
    {"batch_size": None, "drop_last": True},
    {"num_workers": -1},
])
def test_dataloader_refuses_what_torch_refuses(torch, kwargs):
    with pytest.raises(ValueError, match="DataLoader|batch_size"):
        DataLoader(TensorDataset(X, Y), **kwargs)
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X)), **kwargs)


@pytest.mark.parametrize("tensors", [(X, Y[:5]), (), (np.float32(1.0),)])
def test_tensor_dataset_refuses_tensors_of_other_lengths(tensors):
    with pytest.raises(ValueError, match="TensorDataset"):
        TensorDataset(*tensors)


def test_iterable_dataset_refuses_shuffle_and_samplers():
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(), shuffle=True)


def test_samplers_match_torchs_lengths_and_contents(torch):
    assert list(SequentialSampler(range(4))) == list(torch.utils.data.SequentialSampler(range(4)))
    assert sorted(RandomSampler(range(6), generator=0)) == list(range(6))
    draws = list(RandomSampler(range(3), replacement=True, num_samples=50, generator=0))
    assert len(draws) == 50 and set(draws) == {0, 1, 2}
    more = list(RandomSampler(range(4), num_samples=10, generator=0))
    assert len(more) == 10 and sorted(more[:8]) == sorted(list(range(4)) * 2)
    assert sorted(SubsetRandomSampler([7, 3, 5], generator=0)) == [3, 5, 7]
    for drop in (False, True):
        ours = list(BatchSampler(range(10), 3, drop))
        assert ours == list(torch.utils.data.BatchSampler(range(10), 3, drop))
        assert len(BatchSampler(range(10), 3, drop)) == len(ours)
    loader = DataLoader(TensorDataset(X, Y), batch_sampler=[[0, 5], [2]])
    assert [yb.tolist() for _, yb in loader] == [[Y[0], Y[5]], [Y[2]]]


def test_num_workers_and_pin_memory_are_accepted_and_change_nothing():
    plain = [as_numpy(b) for b in DataLoader(TensorDataset(X, Y), batch_size=4)]
    busy = DataLoader(TensorDataset(X, Y), batch_size=4, num_workers=2, pin_memory=True,
                      persistent_workers=True, prefetch_factor=2)
    assert [as_numpy(b) for b in busy] == plain


def test_import_forms_work():
    import glassgrad.utils.data
    from glassgrad.utils.data import DataLoader as D

    assert glassgrad.utils.data.DataLoader is D is gg.utils.data.DataLoader


# --------------------------------------------------------------------------- fit
def moons_fit(**kwargs):
    model = gg.nn.MLP([2, 8, 2], activation="tanh", seed=0)
    history = gg.fit(model, epochs=4, verbose=0, optimizer="sgd", lr=0.1, **kwargs)
    return history.history["loss"], model


MOONS = gg.data.moons(60, seed=1)


@pytest.mark.parametrize("loader, same", [
    (lambda: DataLoader(TensorDataset(*MOONS), batch_size=8, shuffle=True, generator=3),
     {"batch_size": 8, "shuffle": True, "seed": 3}),
    (lambda: DataLoader(TensorDataset(*MOONS), batch_size=16),
     {"batch_size": 16, "shuffle": False}),
    (lambda: DataLoader(Subset(TensorDataset(*MOONS), range(60)), batch_size=16),
     {"batch_size": 16, "shuffle": False}),
    (lambda: gg.data.DataLoader(*MOONS, batch_size=8, shuffle=True, seed=3),
     {"batch_size": 8, "shuffle": True, "seed": np.random.default_rng(3)}),
])
def test_fit_on_a_dataloader_equals_fit_on_its_arrays(loader, same):
    from_loader, _ = moons_fit(X=loader())
    from_arrays, _ = moons_fit(X=MOONS[0], y=MOONS[1], **same)
    assert from_loader == from_arrays


class MoonSamples(Dataset):
    def __len__(self):
        return len(MOONS[0])

    def __getitem__(self, i):
        return MOONS[0][i], int(MOONS[1][i])


def test_fit_reads_a_custom_dataset_once_in_order():
    from_loader, _ = moons_fit(X=DataLoader(MoonSamples(), batch_size=16))
    from_arrays, _ = moons_fit(X=MOONS[0], y=MOONS[1], batch_size=16, shuffle=False)
    assert from_loader == from_arrays


@pytest.mark.parametrize("make, kwargs, words", [
    (lambda: DataLoader(TensorDataset(*MOONS)), {"y": MOONS[1]}, "without y"),
    (lambda: DataLoader(TensorDataset(*MOONS)), {"batch_size": 4}, "batch_size"),
    (lambda: DataLoader(TensorDataset(*MOONS), sampler=range(10)), {}, "sampler"),
    (lambda: DataLoader(TensorDataset(*MOONS), batch_sampler=[[0, 1]]), {}, "sampler"),
    (lambda: DataLoader(TensorDataset(MOONS[0]), batch_size=8), {}, "(inputs, targets)"),
])
def test_fit_refuses_loaders_it_would_misread_and_trains_nothing(make, kwargs, words):
    model = gg.nn.MLP([2, 8, 2], seed=0)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=words):
        gg.fit(model, make(), verbose=0, **kwargs)
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())


def test_fit_takes_the_loaders_drop_last():
    from_loader, _ = moons_fit(X=DataLoader(TensorDataset(*MOONS), batch_size=7, drop_last=True))
    from_arrays, _ = moons_fit(X=MOONS[0], y=MOONS[1], batch_size=7, shuffle=False,
                               drop_last=True)
    keeping, _ = moons_fit(X=MOONS[0], y=MOONS[1], batch_size=7, shuffle=False)
    assert from_loader == from_arrays and from_loader != keeping


def test_fit_without_targets_or_loader_says_so():
    with pytest.raises(TypeError, match="missing the targets y"):
        gg.fit(gg.nn.MLP([2, 2], seed=0), MOONS[0], verbose=0)
