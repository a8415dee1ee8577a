"""benchmarks/autoattack_agreement.py --merge: parts written by separate processes fold into one result."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import autoattack_agreement as aa  # noqa: E402


def _row(robust, n=10):
    return {"n": n, "robust": robust, "robust_accuracy": robust / n, "ci95": [0.0, 1.0], "clean_accuracy": 1.0,
            "over_budget": 0, "linf_max": 0.3, "robust_idx": [], "seconds": 1.0, "device": "cpu", "threads": 1}


def _part(lib, robust, n=10, started="t0"):
    run = {"command": f"python benchmarks/autoattack_agreement.py --libraries {lib}", "started": started,
           "host": {"cpu": "x", "cpus": 2, "torch_threads": 1, "torch": "t", "device": "cpu",
                    "torchattacks": "3", "art": "1"}}
    return {"header": {"runs": [run, run]},  # a part merged twice on the device carries its run twice
            "pipelines": {"a-net": {"description": "d", "dataset": "mnist", "n": n, "eps": 0.3,
                                    "notes": {}, "libraries": {lib: _row(robust, n)}}}}


def test_parts_fold_into_one_row_and_runs_are_not_repeated():
    res = {"header": {"runs": []}, "pipelines": {}}
    for lib, robust in (("advshield", 1), ("torchattacks", 1), ("art", 3)):
        aa.merge(res, _part(lib, robust, started=lib))
    aa.merge(res, _part("art", 3, started="art"))
    assert set(res["pipelines"]["a-net"]["libraries"]) == {"advshield", "torchattacks", "art"}
    assert len(res["header"]["runs"]) == 3
    assert "pass (+0.0)" in aa.render(res)


def test_a_row_at_another_n_replaces_the_old_one_and_a_weaker_attack_fails_the_check():
    res = {"header": {"runs": []}, "pipelines": {}}
    aa.merge(res, _part("advshield", 0, n=10))
    for lib, robust in (("advshield", 5), ("torchattacks", 2), ("art", 4)):
        aa.merge(res, _part(lib, robust, n=100))
    row = res["pipelines"]["a-net"]
    assert row["n"] == 100 and row["libraries"]["advshield"]["robust"] == 5
    assert "**FAIL** (+3.0)" in aa.render(res)


def test_chunked_crafting_resumes_at_the_first_missing_chunk(tmp_path, monkeypatch):
    import types

    import torch

    calls = []

    def fake(pipe, x, y, eps, bs, device):  # a per-image "attack": the chunks' images equal the whole set's
        calls.append(len(x))
        return (x + eps * torch.sign(torch.sin(x * 7))).clamp(0, 1), float(len(x))

    monkeypatch.setitem(aa.RUNNERS, "fake", fake)
    x, y = torch.rand(10, 1, 4, 4), torch.zeros(10, dtype=torch.long)
    args = types.SimpleNamespace(chunk=4, batch_size=2)
    adv, sec = aa.craft("p", "fake", None, x, y, 0.1, args, "cpu", tmp_path)
    whole, _ = fake(None, x, y, 0.1, 2, "cpu")
    assert torch.equal(adv, whole) and sec == 10.0 and calls == [4, 4, 2, 10]
    chunks = sorted((tmp_path / "chunks").iterdir())
    assert len(chunks) == 3 and not any(p.name.endswith(".tmp") for p in chunks)
    chunks[1].unlink()  # a run cut off before its second chunk was kept
    calls.clear()
    again, sec = aa.craft("p", "fake", None, x, y, 0.1, args, "cpu", tmp_path)
    assert torch.equal(again, whole) and sec == 10.0 and calls == [4]  # only the missing chunk is crafted
    calls.clear()  # kept chunks of other images, another pipeline fit or with --force are crafted again
    aa.craft("p", "fake", None, x.flip(0), y, 0.1, args, "cpu", tmp_path)
    assert calls == [4, 4, 2]
    calls.clear()
    aa.craft("p", "fake", None, x.flip(0), y, 0.1, args, "cpu", tmp_path, notes={"defense_sha256": "refitted"})
    assert calls == [4, 4, 2]
    calls.clear()
    aa.craft("p", "fake", None, x.flip(0), y, 0.1, args, "cpu", tmp_path, notes={"defense_sha256": "refitted"})
    assert calls == []
    aa.craft("p", "fake", None, x.flip(0), y, 0.1, types.SimpleNamespace(chunk=4, batch_size=2, force=True), "cpu",
             tmp_path, notes={"defense_sha256": "refitted"})
    assert calls == [4, 4, 2]
    calls.clear()
    aa.craft("p", "fake", None, x, y, 0.1, types.SimpleNamespace(chunk=0, batch_size=2), "cpu", tmp_path)
    assert calls == [10]  # without --chunk: all at once, nothing kept
