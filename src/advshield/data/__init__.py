"""Datasets: official-format loaders, caching, the embedded MNIST sample."""

from advshield.data.classes import check_classes
from advshield.data.core import DatasetName, ImageDataset, Split, train_val_split
from advshield.data.sources import DATA_ENV, dataset_stats, load_dataset, load_folder_dataset

__all__ = ["DATA_ENV", "DatasetName", "ImageDataset", "Split", "check_classes", "dataset_stats", "load_dataset",
           "load_folder_dataset", "train_val_split"]
