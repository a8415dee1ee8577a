"""Which rows a scorecard holds: every defense the zoo and the registries offer for a dataset.

* ``none``: the dataset's standard classifier without a defense (the reference every defense must beat);
* every zoo restorer of the dataset (a card with ``kind: defense``), in front of the classifier it was trained for;
* every registered preprocessing defense (BPDA for the adaptive attack), in front of the standard classifier;
* every registered detector, fitted on clean training images and calibrated at the stated FPR; a detector whose
  fitting is too costly for a scorecard is listed with a note instead of numbers;
* every adversarially trained zoo classifier (its card's ``recipe.adversarial`` is set), alone;
* the combinations: each zoo restorer and each preprocessing defense in front of each robust classifier.

Rows are named by what ``--defense`` accepts: the zoo name, the registered name, ``DEFENSE+CLASSIFIER`` for
a combination and ``none`` for the undefended classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from advshield.checkpoint import read_card
from advshield.defenses import DEFENSES
from advshield.detectors import DETECTORS
from advshield.errors import CheckpointError, InputError
from advshield.user_modules import is_user_spec
from advshield.zoo import list_checkpoints, resolve_checkpoint, zoo_root

# The classifier that preprocessing defenses, detectors and a user's defense protect, and the substitute that
# crafts the transfer attack, per dataset; eps of the L-inf ensemble.
DEFAULTS = {"mnist": {"target": "a-net", "substitute": "b-net", "eps": 0.3},
            "fashion-mnist": {"target": "a-net", "substitute": None, "eps": 0.3},
            "cifar10": {"target": "resnet20", "substitute": "resnet18", "eps": 8 / 255}}
# Preprocessing parameters per dataset (Xu et al. 2018: 1-bit MNIST, 5-bit CIFAR-10); others: factory defaults.
PREPROCESSING_PARAMS = {"cifar10": {"bit-depth": {"bits": 5}, "squeeze": {"bits": 5, "size": 2}}}
# Detectors whose fitting does not fit a scorecard's budget: listed with the reason instead of numbers.
TOO_COSTLY = {"defense-gan": "not measured: WGAN-GP training plus a latent search of 200 steps x 10 restarts per "
                             "image is too costly for a scorecard; measure it with advshield detect --detector defense-gan"}


@dataclass(frozen=True)
class RowSpec:
    """One row: ``defense`` (zoo name, checkpoint, registered name or ``package.module:factory``) or ``detector``
    in front of the classifier ``target``; ``note`` set and ``measured`` False for a row listed without numbers."""

    name: str
    kind: str  # undefended | restorer | preprocessing | detector | robust | combination | user | classifier
    target: str
    defense: str | None = None
    params: dict = field(default_factory=dict)
    detector: str | None = None
    weights: str | None = None
    card: str | None = None  # the zoo card (relative to the zoo's folder) the table links to
    note: str | None = None
    measured: bool = True


def defaults(dataset: str, target: str | None = None, substitute: str | None = None) -> dict:
    """The standard classifier, the transfer substitute and the default eps for ``dataset``."""
    base = dict(DEFAULTS.get(dataset, {"target": None, "substitute": None, "eps": 8 / 255}))
    base["target"] = target or base["target"]
    base["substitute"] = substitute or base["substitute"]
    if not base["target"] or not base["substitute"]:
        raise InputError(f"the scorecard has no default classifier or substitute for {dataset!r} (defaults exist "
                         f"for {', '.join(k for k, v in DEFAULTS.items() if v['substitute'])}); pass --target and "
                         "--substitute")
    return base


def _zoo_name(entry) -> str:
    return entry.name  # the zoo id (file stem), not the architecture


def _card_link(path: Path) -> str | None:
    """The card's path relative to the zoo's folder (None outside the zoo)."""
    card, root = Path(path).with_suffix(".json").resolve(), zoo_root().resolve()
    return card.relative_to(root).as_posix() if card.is_relative_to(root) else None


def is_robust(card: dict) -> bool:
    """An adversarially trained classifier: its recipe names the adversarial training it used."""
    return card.get("kind") != "defense" and bool((card.get("recipe") or {}).get("adversarial"))


def _victim_of(restorer_card: dict, classifiers: list) -> str:
    """The zoo classifier a restorer was trained for, found by its weights' hash (else the card's name)."""
    sha = restorer_card.get("target_sha256")
    hit = [e for e in classifiers if sha and e.card.get("sha256") == sha]
    return _zoo_name(hit[0]) if hit else restorer_card["target"]


def catalog(dataset: str, target: str | None = None, substitute: str | None = None) -> list[RowSpec]:
    """Every row of ``dataset``'s scorecard (see the module's docstring), in table order."""
    std = defaults(dataset, target, substitute)["target"]
    entries = [e for e in list_checkpoints() if e.dataset == dataset]
    classifiers = [e for e in entries if e.card.get("kind") not in ("defense", "detector")]
    restorers = [e for e in entries if e.card.get("kind") == "defense"]
    robust = [e for e in classifiers if is_robust(e.card)]
    std_card = next((_card_link(e.path) for e in classifiers if _zoo_name(e) == std), None)
    pre = {n: PREPROCESSING_PARAMS.get(dataset, {}).get(n, {}) for n in DEFENSES.names(kind="preprocessing")}
    rows = [RowSpec("none", "undefended", std, card=std_card)]
    rows += [RowSpec(_zoo_name(e), "restorer", _victim_of(e.card, classifiers), _zoo_name(e), card=_card_link(e.path))
             for e in restorers]
    rows += [RowSpec(n, "preprocessing", std, n, p) for n, p in pre.items()]
    for kind in DETECTORS.names():
        rows.append(RowSpec(kind, "detector", std, detector=kind, note=TOO_COSTLY.get(kind),
                            measured=kind not in TOO_COSTLY))
    for r in robust:
        name = _zoo_name(r)
        rows.append(RowSpec(name, "robust", name, card=_card_link(r.path)))
        rows += [RowSpec(f"{_zoo_name(e)}+{name}", "combination", name, _zoo_name(e), card=_card_link(e.path))
                 for e in restorers if _victim_of(e.card, classifiers) != name]
        rows += [RowSpec(f"{n}+{name}", "combination", name, n, p) for n, p in pre.items()]
    return rows


def not_shipped(dataset: str) -> list[str]:
    """Registered trainable defenses with no zoo checkpoint for ``dataset`` (named in the table's notes)."""
    have = {e.card.get("architecture") for e in list_checkpoints() if e.dataset == dataset
            and e.card.get("kind") == "defense"}
    kinds = ("restorer", "reformer")
    return [n for n in DEFENSES.names() if DEFENSES.entry(n).meta.get("kind") in kinds and n not in have]


def user_row(spec: str, dataset: str, target: str, *, weights: str | None = None, params: dict | None = None,
             name: str | None = None) -> RowSpec:
    """The user's own row: a restorer checkpoint (in front of the classifier its card names, when the zoo has
    it), a classifier checkpoint (alone: an adversarially trained model), a registered defense or detector, or
    ``package.module:factory`` (with ``weights``)."""
    if is_user_spec(spec):
        return RowSpec(name or spec, "user", target, spec, params or {}, weights=weights)
    if weights is not None:
        raise InputError(f"--defense-weights goes with a package.module:factory defense, not {spec!r}")
    if spec in DETECTORS:
        return RowSpec(name or spec, "detector", target, detector=spec, note=TOO_COSTLY.get(spec),
                       measured=spec not in TOO_COSTLY)
    if spec in DEFENSES and DEFENSES.entry(spec).meta.get("kind") == "preprocessing":
        DEFENSES.create(spec, **(params or {}))  # unknown parameters fail now
        return RowSpec(name or spec, "user", target, spec, params or {})
    path = resolve_checkpoint(spec, dataset)
    card = read_card(path)
    if card.get("kind") == "detector":
        raise InputError(f"{spec}: a saved detector; add it by its registered name ({card.get('detector')})")
    if card.get("kind") != "defense":  # a classifier (say, the user's adversarially trained one), alone
        if card.get("dataset") not in (None, dataset):
            raise InputError(f"{spec}: a classifier for {card['dataset']}, not {dataset}")
        return RowSpec(name or Path(spec).stem, "robust" if is_robust(card) else "classifier", str(spec),
                       card=_card_link(path))
    victim = target
    if card.get("target"):  # in front of the classifier it was trained for, when the zoo holds it
        classifiers = [e for e in list_checkpoints() if e.dataset == dataset and e.card.get("kind") != "defense"]
        try:
            victim = str(resolve_checkpoint(_victim_of(card, classifiers), dataset).stem)
        except CheckpointError:
            victim = target
    return RowSpec(name or Path(spec).stem, "user", victim, str(spec), card=_card_link(path))


__all__ = ["DEFAULTS", "RowSpec", "catalog", "defaults", "is_robust", "not_shipped", "user_row"]
