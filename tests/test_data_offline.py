"""The offline copies in ../shared/data (skipped where they are absent)."""

import time

import numpy as np
import pytest

from advshield.data import load_dataset
from conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="offline data copies not present")


def load_splits(name, monkeypatch, cache):
    monkeypatch.setenv("ADVSHIELD_CACHE", str(cache))
    return load_dataset(name, "train", SHARED_DATA), load_dataset(name, "test", SHARED_DATA)


@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_copies(name):
    train, test = load_dataset(name, "train", SHARED_DATA), load_dataset(name, "test", SHARED_DATA)
    assert (len(train), len(test)) == (60000, 10000)
    if name == "mnist":
        assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    else:
        assert np.bincount(train.labels).tolist() == [6000] * 10 and train.classes[9] == "Ankle boot"


@needs_shared
@pytest.mark.slow
def test_cifar10_copy_and_cache(monkeypatch, shared_cache):
    train, test = load_splits("cifar10", monkeypatch, shared_cache)
    assert (len(train), len(test)) == (50000, 10000)
    assert np.bincount(train.labels).tolist() == [5000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    mean = train.images.mean(axis=(0, 2, 3), dtype=np.float64) / 255
    assert np.allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.01)
    t0 = time.perf_counter()
    again = load_dataset("cifar10", "train", SHARED_DATA)
    assert time.perf_counter() - t0 < 2.0, "a cached CIFAR-10 load must take under 2 s"
    assert np.array_equal(again.labels, train.labels)


@needs_shared
@pytest.mark.slow
def test_gtsrb_copy(monkeypatch, shared_cache):
    train, test = load_splits("gtsrb", monkeypatch, shared_cache)
    assert (len(train), len(test)) == (39209, 12630)
    assert len(train.classes) == 43 and train.classes[0] == "00000" and train.images.shape[1:] == (3, 32, 32)
    assert np.bincount(train.labels, minlength=43).min() > 0
