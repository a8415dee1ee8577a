"""``advshield scorecard``: the rows a dataset's zoo and registries give, every column filled, rows stored by hash
(a rerun with one more defense measures only that row), a user's own defense, and torchrun with 2 processes
giving the one-process table. Tiny budgets: 8 embedded MNIST images, deterministic FGSM, no health checks."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from advshield.metrics import wilson_interval
from typer.testing import CliRunner

from advshield.cli import app
from advshield.scorecard import catalog
import advshield.scorecard.rows as catalog_module
from advshield.zoo import ZooEntry, list_checkpoints

runner = CliRunner()
TINY = ["--dataset", "mnist", "--images", "8", "--attack", "fgsm", "--checks", "0", "--batch-size", "8",
        "--detector-train", "200", "--detector-calibration", "100", "--detector-epochs", "1", "--device", "cpu"]
FILLED = ("clean_accuracy", "defended_clean_accuracy", "oblivious_robust_accuracy", "transfer_robust_accuracy",
          "adaptive_robust_accuracy", "worst_case_robust_accuracy", "worst_case_ci95", "oblivious_recovery",
          "worst_case_recovery", "ms_per_image")

DEFENSE_PY = '''
import torch
from torch import nn


class Blur(nn.Module):
    """A 3x3 box blur with a learnable gain (so it has weights to load)."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return (nn.functional.avg_pool2d(x, 3, 1, 1) * self.gain).clamp(0, 1)


def make_blur():
    return Blur()
'''


def scorecard(tmp_path, *args):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scorecard", *TINY, "--out", str(out), "--store", str(tmp_path / "store"), "--json",
                              *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout[res.stdout.index("{"):]), out


def test_catalog_has_every_zoo_restorer_preprocessing_defense_and_detector():
    rows = {r.name: r for r in catalog("mnist")}
    zoo = [e.path.stem for e in list_checkpoints() if e.dataset == "mnist" and e.card.get("kind") == "defense"]
    assert zoo and set(zoo) <= set(rows)
    assert {"none", "bit-depth", "median", "jpeg", "tvm", "squeeze", "magnet-error", "cmag-ssim"} <= set(rows)
    assert rows["cru-net-for-b-net"].target == "b-net" and rows["median"].target == "a-net"
    assert not rows["defense-gan"].measured and "too costly" in rows["defense-gan"].note
    assert all(r.kind != "robust" for r in rows.values() if r.name in ("a-net", "b-net"))


def test_adversarially_trained_zoo_models_are_found_by_their_recipe(monkeypatch):
    """A card whose recipe names adversarial training becomes a row, with each restorer and preprocessing
    defense in front of it; a card without it (or with adversarial: null) does not."""
    real = list_checkpoints()
    base = next(e for e in real if e.dataset == "mnist" and e.path.stem == "a-net")
    robust = ZooEntry(base.path.with_name("a-net-robust.safetensors"),
                      dict(base.card, recipe=dict(base.card["recipe"], adversarial={"method": "pgd", "eps": 0.3})))
    plain = ZooEntry(base.path.with_name("a-net-plain.safetensors"),
                     dict(base.card, recipe=dict(base.card["recipe"], adversarial=None)))
    monkeypatch.setattr(catalog_module, "list_checkpoints", lambda *a: real + [robust, plain])
    rows = {r.name: r for r in catalog("mnist")}
    assert rows["a-net-robust"].kind == "robust" and "a-net-plain" not in rows
    assert rows["cru-net-for-a-net+a-net-robust"].target == "a-net-robust"
    assert rows["cru-net-for-a-net+a-net-robust"].defense == "cru-net-for-a-net"
    assert rows["median+a-net-robust"].kind == "combination"


def test_rows_columns_filled_worst_case_bounded_and_rows_cached(tmp_path):
    card, out = scorecard(tmp_path, "--defense", "none", "--defense", "bit-depth", "--defense", "magnet-error")
    rows = {r["name"]: r for r in card["rows"]}
    assert list(rows) == ["none", "bit-depth", "magnet-error"] and card["computed"] == list(rows)
    for r in rows.values():
        assert r["n"] == 8 and all(r[k] is not None for k in FILLED), r
        assert isinstance(r["red_flags"], list)
        # every row with a checkpoint links its card (a preprocessing defense has none)
        assert (r["kind"] == "preprocessing") != bool(r.get("card") or r.get("detector_card")), r
        for k in ("oblivious_robust_accuracy", "transfer_robust_accuracy", "adaptive_robust_accuracy"):
            assert r["worst_case_robust_accuracy"] <= r[k] + 1e-9, (r["name"], k)
        assert r["worst_case_ci95"][0] <= r["worst_case_robust_accuracy"] <= r["worst_case_ci95"][1]
    assert rows["none"]["oblivious_robust_accuracy"] < rows["none"]["clean_accuracy"]  # FGSM 0.3 hurts a-net
    # recovery, by hand: without a defense an image is robust only if right clean, so recovery is the robust
    # images over the clean-correct ones
    none = rows["none"]
    clean_right = round(none["clean_accuracy"] * 8)
    assert clean_right > 0
    assert none["oblivious_recovery"] == pytest.approx(round(none["oblivious_robust_accuracy"] * 8) / clean_right)
    assert none["worst_case_recovery"] == pytest.approx(round(none["worst_case_robust_accuracy"] * 8) / clean_right)
    for r in rows.values():  # the worst case is never above the oblivious attack's recovery
        assert 0 <= r["worst_case_recovery"] <= r["oblivious_recovery"] + 1e-9 <= 1 + 1e-9, r["name"]
        assert r["worst_case_recovery"] * r["clean_accuracy"] <= r["worst_case_robust_accuracy"] + 1e-9, r["name"]
    assert 0 < rows["magnet-error"]["detector"]["threshold"] and rows["magnet-error"]["detector"]["fpr"] == 0.05
    table = (out / "scorecard.md").read_text()
    assert "| none | undefended | a-net |" in table and "adaptive worst case" in table and "[card](" in table
    head = next(ln for ln in table.splitlines() if ln.startswith("| defense |")).split(" | ")
    md_none = next(ln for ln in table.splitlines() if ln.startswith("| none |")).split(" | ")
    assert md_none[head.index("worst-case recovery")] == f"{100 * none['worst_case_recovery']:.1f} %"
    assert md_none[head.index("oblivious recovery")] == f"{100 * none['oblivious_recovery']:.1f} %"
    lo, hi = wilson_interval(round(none["oblivious_robust_accuracy"] * none["n"]), none["n"])  # the interval beside it
    assert md_none[head.index("oblivious")] == (f"{100 * none['oblivious_robust_accuracy']:.1f} % "
                                                f"[{100 * lo:.1f}, {100 * hi:.1f}]")
    assert table.index("## Red flags") < table.index("| defense |")  # the red flags open the page
    header, *lines = list(csv.reader((out / "scorecard.csv").open()))
    assert {"clean_accuracy", "oblivious_robust_accuracy", "transfer_robust_accuracy", "worst_case_ci95",
            "oblivious_recovery", "worst_case_recovery", "red_flags", "ms_per_image", "card"} <= set(header)
    csv_none = dict(zip(header, lines[0]))
    assert float(csv_none["worst_case_recovery"]) == pytest.approx(none["worst_case_recovery"], abs=1e-5)
    page = (out / "report.html").read_text()
    assert 'id="scorecard-table"' in page and page.count(">card</a>") == 3 and 'id="best-worst-case"' in page
    assert "worst-case recovery" in page and "oblivious recovery" in page
    files = sorted((out / "rows").glob("*.json"))
    assert len(files) == 3
    before = {f.name: f.stat().st_mtime_ns for f in files}

    card2, _ = scorecard(tmp_path, "--defense", "none", "--defense", "bit-depth", "--defense", "magnet-error",
                         "--defense", "median")
    assert card2["computed"] == ["median"] and card2["cached"] == ["none", "bit-depth", "magnet-error"]
    assert {f.name: f.stat().st_mtime_ns for f in (out / "rows").glob("*.json") if f.name in before} == before
    assert [r["worst_case_robust_accuracy"] for r in card2["rows"][:3]] == \
        [r["worst_case_robust_accuracy"] for r in card["rows"]]
    card3, _ = scorecard(tmp_path, "--defense", "none", "--eps", "0.2")  # another eps: another key
    assert card3["computed"] == ["none"]


def test_recovery_counts_over_the_originally_correct_images():
    """4 images; the classifier alone is right on the first three. Image 4 is right through the defense when
    clean and under both attacks (the defense fixes it): it counts in the worst-case robust accuracy, not in
    recovery. Image 2 falls to the oblivious attack, image 3 to the adaptive one: of the three originally correct
    images only image 1 survives both, so the worst-case recovery is 1/3 (robust accuracy 2/4)."""
    from types import SimpleNamespace

    import torch

    from advshield.scorecard.measure import summarise, worst_case_recovery

    clean_ok = torch.tensor([True, True, True, False])
    oblivious = torch.tensor([True, False, True, True])
    adaptive = torch.tensor([True, True, False, True])
    row = {"n": 4, "attack": "fgsm", "params": {"eps": 0.1}, "clean_accuracy": 0.75, "defended_clean_accuracy": 1.0}
    rows = [dict(row, threat="white-box", restored_accuracy=0.75, restored_accuracy_ci95=[0, 1], recovery_rate=2 / 3),
            dict(row, threat="transfer:b-net", restored_accuracy=1.0, restored_accuracy_ci95=[0, 1], recovery_rate=1.0),
            dict(row, threat="adaptive", restored_accuracy=0.75, restored_accuracy_ci95=[0, 1], recovery_rate=2 / 3)]
    ctx = SimpleNamespace(dist=SimpleNamespace(all_sum=lambda sums: sums))
    out = summarise(rows, [oblivious, torch.ones(4, dtype=torch.bool), adaptive], ctx, [], {}, clean_ok)
    assert out["worst_case_robust_accuracy"] == 0.5
    assert out["worst_case_recovery"] == pytest.approx(1 / 3)
    assert out["oblivious_recovery"] == pytest.approx(2 / 3)  # the white-box row's, as the evaluation computed it
    # summed over processes: two shards of the same images count as one set of 8
    twice = lambda sums: {k: 2 * v for k, v in sums.items()}
    assert worst_case_recovery([oblivious, adaptive], clean_ok, twice) == pytest.approx(2 / 6)
    assert worst_case_recovery([oblivious], torch.zeros(4, dtype=torch.bool)) == 0.0


def test_stored_rows_of_the_previous_format_are_measured_again():
    """The row format is part of every row's hash: rows stored before the recovery columns get another key (and
    file name), so a rerun measures them instead of showing empty recovery cells."""
    from advshield.scorecard import config

    assert config.FORMAT >= 2
    ident = {"kind": "undefended", "seed": 0}
    before = config.FORMAT
    try:
        config.FORMAT = 1
        old = config.row_key(ident)
    finally:
        config.FORMAT = before
    assert config.row_key(ident) != old


def test_users_own_defense_by_package_module_factory(tmp_path, monkeypatch):
    import torch

    pkg = tmp_path / "userpkgs" / "scpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "defs.py").write_text(DEFENSE_PY)
    monkeypatch.syspath_prepend(str(pkg.parent))
    torch.save({"gain": torch.ones(1)}, tmp_path / "blur.pt")
    card, out = scorecard(tmp_path, "--defense", "none", "--add-defense", "scpkg.defs:make_blur",
                          "--defense-weights", str(tmp_path / "blur.pt"), "--name", "my-blur",
                          "--markdown", str(tmp_path / "docs" / "scorecard.md"))
    rows = {r["name"]: r for r in card["rows"]}
    assert set(rows) == {"none", "my-blur"} and rows["my-blur"]["kind"] == "user"
    assert rows["my-blur"]["defense"]["name"] == "Blur" and rows["my-blur"]["classifier"] == "a-net"
    assert all(rows["my-blur"][k] is not None for k in FILLED)
    assert "| my-blur | user | a-net |" in (out / "scorecard.md").read_text()
    doc = (tmp_path / "docs" / "scorecard.md").read_text()  # --markdown: a second copy whose links stay inside
    assert "| my-blur | user | a-net |" in doc and "](../" not in doc and "a-net.json`" in doc


def test_add_defense_takes_checkpoints_registered_names_and_factories(tmp_path):
    import shutil

    from advshield.scorecard import user_row
    from advshield.zoo import pretrained_path

    restorer = user_row(str(pretrained_path("cru-net-for-b-net", "mnist")), "mnist", "a-net", name="mine")
    assert (restorer.kind, restorer.target, restorer.card) == ("user", "b-net", "mnist/cru-net-for-b-net.json")
    net = pretrained_path("a-net", "mnist")
    robust = tmp_path / "my-robust.safetensors"
    shutil.copy(net, robust)
    card = json.loads(net.with_suffix(".json").read_text())
    card["recipe"]["adversarial"] = {"method": "pgd", "eps": 0.3}
    robust.with_suffix(".json").write_text(json.dumps(card))
    row = user_row(str(robust), "mnist", "a-net")
    assert (row.kind, row.target, row.defense) == ("robust", str(robust), None)
    assert user_row(str(net), "mnist", "a-net").kind == "classifier"
    assert user_row("magnet-error", "mnist", "a-net").detector == "magnet-error"
    pre = user_row("median", "mnist", "a-net", params={"size": 2}, name="median-2")
    assert (pre.name, pre.defense, pre.params) == ("median-2", "median", {"size": 2})
    assert user_row("pkg.mod:make", "mnist", "a-net", weights="w.pt").kind == "user"


def _cli(*args, env=None):
    env = dict(os.environ, **(env or {}))
    env.pop("ADVSHIELD_DATA", None)
    return subprocess.run([sys.executable, "-m", "advshield", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_unknown_row_and_bad_add_defense_are_one_error_line(tmp_path):
    for args, fragment in ((["--defense", "no-such-defense"], "no such row"),
                           (["--add-defense", "median", "--defense-param", "nope=1"], "nope")):
        proc = _cli("scorecard", *TINY, "--out", str(tmp_path / "o"), *args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert fragment in lines[0]
    listing = runner.invoke(app, ["scorecard", "--dataset", "mnist", "--list"])
    assert listing.exit_code == 0 and "cru-net-for-a-net" in listing.stdout and "defense-gan" in listing.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _table(out):
    """The CSV without the columns a run measures anew (inference time) or names by its folder (card links)."""
    rows = list(csv.DictReader((out / "scorecard.csv").open()))
    return [{k: v for k, v in r.items() if k not in ("ms_per_image", "card")} for r in rows]


@pytest.mark.slow
def test_torchrun_two_processes_give_the_one_process_table(tmp_path):
    args = ["scorecard", *TINY, "--eps", "0.15", "--defense", "none", "--defense", "median", "--defense", "magnet-error"]
    env = {"OMP_NUM_THREADS": "1"}
    one = _cli(*args, "--out", str(tmp_path / "one"), "--store", str(tmp_path / "s1"), env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    env_ddp = dict(os.environ, **env)
    env_ddp.pop("ADVSHIELD_DATA", None)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(_free_port()), "-m", "advshield", *args,
                          "--out", str(tmp_path / "two"), "--store", str(tmp_path / "s2")],
                         capture_output=True, text=True, env=env_ddp, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    card = json.loads((tmp_path / "two" / "scorecard.json").read_text())
    assert card["machine"]["world_size"] == 2 and all(r["world_size"] == 2 for r in card["rows"])
    assert any(p.name.startswith("test[4:8]") or "test[4:8]" in p.read_text()
               for p in (tmp_path / "s2").rglob("meta.json"))  # the images were sharded
    assert _table(tmp_path / "two") == _table(tmp_path / "one")
