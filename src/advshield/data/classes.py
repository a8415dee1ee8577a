"""Class lists: the known datasets' classes, and checks that a split or a model agrees with them.

Labels are class indices, so a split whose class folders differ from the other
split's (or from the classes a model was trained on) silently renumbers every
class after the difference. These checks turn that into a
:class:`ClassMismatchError` naming the missing and extra classes.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from advshield.errors import ClassMismatchError

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
GTSRB_CLASSES = [f"{i:05d}" for i in range(43)]  # the class folders of the GTSRB distributions

KNOWN_CLASSES = {"mnist": MNIST_CLASSES, "fashion-mnist": FASHION_CLASSES, "cifar10": CIFAR10_CLASSES,
                 "gtsrb": GTSRB_CLASSES}


def _names(items: Iterable[str], most: int = 8) -> str:
    items = sorted(items)
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


_RENUMBERED = "Labels are class indices, so every class after the difference would be renumbered"


def compare_classes(have: list[str], want: list[str], what: str, reference: str) -> None:
    """Raise unless ``have`` (the classes of ``what``) equals ``want`` (those of ``reference``), order included."""
    if list(have) == list(want):
        return
    missing, extra = set(want) - set(have), set(have) - set(want)
    parts = [f"lacks {_names(missing)}" if missing else "", f"has extra {_names(extra)}" if extra else ""]
    detail = "; ".join(p for p in parts if p) or f"orders them differently ({_names(have, 4)}...)"
    raise ClassMismatchError(f"{what} does not have the classes of {reference}: it {detail}. {_RENUMBERED}")


def check_split_classes(where: str, split: str, classes: list[str], others: Mapping[str, list[str]]) -> None:
    """The classes of ``split`` must equal those of every other split of the same source that has class folders."""
    for other, theirs in others.items():
        mine, theirs = set(classes), set(theirs)
        if theirs and other != split and mine != theirs:
            parts = [f"{name} lacks {_names(a - b)}" for name, a, b in
                     ((f"the {split} split", theirs, mine), (f"the {other} split", mine, theirs)) if a - b]
            raise ClassMismatchError(f"{where}: the {split} and {other} splits have different class folders: "
                                     f"{'; '.join(parts)}. {_RENUMBERED}; restore the missing class folders")


def card_classes(card: Mapping) -> list[str] | None:
    """The class list a model card was trained on: its ``classes`` entry, else its known dataset's."""
    if card.get("classes"):
        return [str(c) for c in card["classes"]]
    return KNOWN_CLASSES.get(str(card.get("dataset", "")))


def check_classes(dataset, card: Mapping):
    """Raise :class:`ClassMismatchError` unless ``dataset`` has the classes, in order, of the model ``card``.

    Call it before evaluating a model on a dataset it was not loaded for; returns ``dataset``. A card with no
    class list and an unknown dataset is checked on the number of classes only (when the card states it).
    """
    want = card_classes(card)
    model = f"the model ({card.get('architecture', 'model')} trained on {card.get('dataset', 'unknown data')})"
    if want is not None:
        compare_classes(list(dataset.classes), want, f"dataset {dataset.name}", model)
    elif card.get("num_classes") not in (None, dataset.num_classes):
        raise ClassMismatchError(f"dataset {dataset.name} has {dataset.num_classes} classes but {model} "
                                 f"predicts {card['num_classes']}")
    return dataset
