"""An ensemble's per-member robust accuracy reaches the card and the reports, from a fresh run and from the store."""
import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

import advshield
from advshield import adversarial
from advshield.attacks import AttackResult
from advshield.checkpoint import save_tensors
from advshield.tensorfile import concatenate


def _tiny():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 5)).eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8)).astype(np.float32) / 255)
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, x, y


def _ensemble_row(card):
    return next(r for r in card["rows"] if r["attack"] == "autoattack" and r["threat"] == "adaptive")


def test_members_are_in_the_card_fresh_and_cached(tmp_path):
    net, x, y = _tiny()
    kw = dict(attacks=("autoattack",), threats=("adaptive",), attack_params={"autoattack": {"eps": 0.03,
              "version": "fast"}}, store=tmp_path / "store", checks=0)
    fresh = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), **kw)
    after = _ensemble_row(fresh.card)["robust_accuracy_after"]
    assert list(after) == ["clean", "apgd-ce", "apgd-t"]  # the members in the order they ran
    values = list(after.values())
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:]))  # cumulative
    assert 0 < values[1] < 1  # at this eps APGD-CE breaks some images, not all: the numbers can tell members apart
    assert abs(values[-1] - _ensemble_row(fresh.card)["restored_accuracy"]) < 1e-6  # deterministic defense: same judge
    cached = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), **kw)  # read back from the store
    assert _ensemble_row(cached.card)["robust_accuracy_after"] == after
    md = cached.to_markdown()
    assert "autoattack (adaptive), robust accuracy after each member: clean 1.0000, apgd-ce " in md
    # crafted on the bare classifier (oblivious), the record judges no defense: the row through it does not get it
    both = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), **dict(kw, threats=("white-box", "adaptive")))
    assert [("robust_accuracy_after" in r) for r in both.card["rows"]] == [False, True]


def test_a_single_attack_row_has_no_members(tmp_path):
    net, x, y = _tiny()
    card = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), attacks=("fgsm",), threats=("adaptive",),
                              attack_params={"fgsm": {"eps": 0.03}}, store=tmp_path / "store", checks=0,
                              ensemble=False).card
    assert "robust_accuracy_after" not in card["rows"][0] and "member" not in advshield.Evaluation(card).to_markdown()


def _part(n, members):
    g = torch.Generator().manual_seed(n)
    info = {"members": ["apgd-ce"], "broken_by": torch.randint(-2, 1, (n,), generator=g)} if members else {}
    labels = torch.zeros(n, dtype=torch.long)
    return AttackResult(torch.rand(n, 1, 2, 2, generator=g), labels, labels.clone(), labels.clone(),
                        {"l2": torch.rand(n)}, 1.0, info=info)


def test_shards_with_and_without_the_record_are_folded_without_it(tmp_path):
    """A set resumed from shards an older version wrote (no per-member record) beside new ones still folds."""
    parts = [_part(3, members=False), _part(4, members=True)]
    shards = [tmp_path / f"shard-{i:05d}.safetensors" for i in range(2)]
    for shard, part in zip(shards, parts):
        save_tensors(shard, adversarial._result_tensors(part), {"architecture": "adversarial-shard",
                                                                **adversarial._result_card(part)})
    assert "broken_by" in load_file(shards[1]) and "broken_by" not in load_file(shards[0])
    adversarial._same_records(shards, parts)
    assert "broken_by" not in load_file(shards[1]) and not parts[1].info
    assert torch.equal(load_file(shards[1])["adv"], _part(4, members=True).adv)  # the images are kept as they were
    concatenate(tmp_path / "adv.safetensors", shards)  # the fold raised before: the shards held other tensors
    whole = load_file(tmp_path / "adv.safetensors")
    assert whole["adv"].shape[0] == 7 and "broken_by" not in whole
    kept = [_part(3, members=True), _part(4, members=True)]  # all with the record: nothing is rewritten
    adversarial._same_records(shards, kept)
    assert all("broken_by" in p.info for p in kept)


def test_a_binary_classifier_gets_the_members_its_classes_allow(tmp_path):
    """APGD-T's targeted DLR loss needs 4 classes: on 2 the ensemble skips it, names it, and runs the others."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).eval()
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (6, 1, 8, 8)).astype(np.float32) / 255)
    with torch.no_grad():
        y = net(x).argmax(1)
    card = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), attacks=("fgsm",), threats=("adaptive",),
                              attack_params={"fgsm": {"eps": 0.3}}, store=tmp_path / "store", checks=0).card
    row = _ensemble_row(card)
    assert list(row["robust_accuracy_after"]) == ["clean", "apgd-ce", "fab-t", "square"]
    assert row["skipped_members"] == ["apgd-t"]
    assert "Skipped (the model has too few classes for their loss): apgd-t." in advshield.Evaluation(card).to_markdown()
