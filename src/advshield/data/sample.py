"""An embedded MNIST sample so the main job and demos run with no data root.

``assets/mnist_sample.npz`` holds the first 5000 training and first 1000 test
images of the offline MNIST copy this project was built with (same order and
labels as the official files, intensities slightly darker; see README).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from advshield.data.classes import MNIST_CLASSES
from advshield.data.core import ImageDataset


def load_mnist_sample(split: str = "train") -> ImageDataset:
    with resources.files("advshield.data").joinpath("assets/mnist_sample.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    return ImageDataset(images[:, None], labels.astype(np.int64), MNIST_CLASSES, f"mnist-sample-{split}",
                        {"dataset": "mnist", "split": split, "source": "embedded sample"})
