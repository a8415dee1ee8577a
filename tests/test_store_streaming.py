"""The adversarial-set store streams (issue 30): shards are folded into the final file without a whole-set
tensor or blob, and a set's images are read lazily, row ranges at a time, exactly as an eager load reads them."""

import contextlib
import hashlib
import json
import os

import numpy as np
import pytest
import safetensors.torch
import torch

from advshield import adversarial, checkpoint, tensorfile
from advshield.adversarial import AdversarialSpec, generate_adversarial_set, load_adversarial_set
from advshield.attacks import FGSM, Pipeline
from advshield.data import load_dataset
from advshield.errors import CheckpointError
from advshield.tensorfile import StoredImages
from advshield.zoo import load_pretrained

N, SHARD = 120, 50  # three shards: 50 + 50 + 20, boundaries at rows 50 and 100


@pytest.fixture(scope="module")
def anet():
    model, card = load_pretrained("a-net", "mnist")
    return Pipeline(model), card, load_dataset("mnist", "test")


def _make(anet, root):
    pipeline, card, data = anet
    attack = FGSM(0.2)
    spec = AdversarialSpec(card["sha256"], attack.name, attack.params(), "mnist", "test", N)
    return generate_adversarial_set(spec, attack, pipeline, data, root)


@pytest.fixture
def stored(anet, tmp_path, monkeypatch):
    """(folder, result) of a freshly crafted 3-shard set, plus the shards' tensors as they were before folding."""
    monkeypatch.setattr(adversarial, "SHARD", SHARD)
    shards = []
    fold = adversarial.concatenate

    def keep_shards(path, sources):
        shards.extend(safetensors.torch.load_file(s) for s in sources)
        return fold(path, sources)

    monkeypatch.setattr(adversarial, "concatenate", keep_shards)
    folder, result, cached = _make(anet, tmp_path)
    assert not cached and len(shards) == 3
    return folder, result, shards


def test_lazy_view_reads_exactly_what_an_eager_load_reads(stored, monkeypatch):
    monkeypatch.setattr(tensorfile, "BLOCK", 16)  # scattered rows span many blocks
    folder, crafted, _ = stored
    eager = safetensors.torch.load_file(folder / "adv.safetensors")["adv"]
    loaded, _ = load_adversarial_set(folder)
    for view in (crafted.adv, loaded.adv):
        assert isinstance(view, StoredImages)
        assert len(view) == N and view.shape == eager.shape and view.dtype == eager.dtype and view.ndim == 4
        assert torch.equal(view.materialize(), eager) and torch.equal(view[:], eager)
        for sl in (slice(45, 55), slice(99, 101), slice(0, 50), slice(100, None), slice(-5, None), slice(10, 110, 7),
                   slice(60, 40), slice(200, 300)):
            assert torch.equal(view[sl], eager[sl]), sl
        assert torch.equal(view[::-3], eager.flip(0)[::3])
        for i in (0, 49, 50, 119, -1, -120, np.int64(77), torch.tensor(100)):
            assert torch.equal(view[i], eager[i]), i
        assert torch.equal(view[3:7, 0], eager[3:7, 0]) and torch.equal(view[5, 0, 3], eager[5, 0, 3])
        mask = torch.rand(N, generator=torch.Generator().manual_seed(0)) > 0.6
        index = torch.tensor([119, 0, 50, 50, -1, 77, 49, 100, 3])
        assert torch.equal(view[mask], eager[mask]) and torch.equal(view[mask.numpy()], eager[mask])
        assert torch.equal(view[index], eager[index]) and torch.equal(view[index.numpy()], eager[index])
        assert torch.equal(view[[5, 60, 110]], eager[[5, 60, 110]]) and view[torch.zeros(N, dtype=torch.bool)].shape[0] == 0
        sub = view.select(mask)  # lazy: a selection of a selection, sliced and split
        assert len(sub) == int(mask.sum()) and torch.equal(sub.materialize(), eager[mask])
        assert torch.equal(sub[2:9], eager[mask][2:9]) and torch.equal(sub[-1], eager[mask][-1])
        assert torch.equal(sub.select(torch.tensor([4, 0]))[:], eager[mask][[4, 0]])
        batches = view.split(32)
        assert len(batches) == 4 and torch.equal(torch.cat(list(batches)), eager)
        with pytest.raises(IndexError):
            view[N]
        with pytest.raises(IndexError):
            view[torch.ones(N - 1, dtype=torch.bool)]
        with pytest.raises(IndexError):
            view[torch.tensor([0, N])]


def test_folded_file_is_the_file_safetensors_writes_for_the_whole_set(stored):
    folder, crafted, shards = stored
    whole = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
    blob = (folder / "adv.safetensors").read_bytes()
    assert blob == safetensors.torch.save(whole)  # byte for byte what the eager store wrote
    read = safetensors.torch.load_file(folder / "adv.safetensors")
    assert read.keys() == whole.keys() and all(torch.equal(read[k], whole[k]) for k in whole)
    meta = json.loads((folder / "meta.json").read_text())
    card = json.loads((folder / "adv.json").read_text())
    assert meta["sha256"] == card["sha256"] == hashlib.sha256(blob).hexdigest() and card["weights_file"] == "adv.safetensors"
    assert meta["summary"] == crafted.summary() and meta["summary"]["n"] == N
    assert torch.equal(crafted.labels, whole["labels"]) and torch.equal(crafted.adv_pred, whole["adv_pred"])
    assert not list(folder.glob("shard-*")) and not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_sha_mismatch_is_found_by_the_streaming_check(stored, monkeypatch):
    folder, crafted, _ = stored
    path = folder / "adv.safetensors"
    good = path.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF  # same size, one image byte flipped: only the hash can tell
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(2, 2))  # in place, same size: the view sees the new modification time
    monkeypatch.setattr(tensorfile, "CHUNK", 4096)
    real_read_bytes = type(path).read_bytes

    def no_whole_read(self):
        assert self.suffix != ".safetensors", "the check must stream the file, not read it whole"
        return real_read_bytes(self)

    monkeypatch.setattr(type(path), "read_bytes", no_whole_read)
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_adversarial_set(folder)
    with pytest.raises(CheckpointError, match="changed since it was read"):
        crafted.adv[0:2]  # a view never reads content other than the one it was verified on
    path.write_bytes(good)  # the same content again (rewritten): the view re-verifies and reads on
    os.utime(path, ns=(1, 1))
    assert torch.equal(crafted.adv[0:2], safetensors.torch.load_file(path)["adv"][0:2])


def test_folding_holds_no_whole_set_tensor_or_blob(anet, tmp_path, monkeypatch):
    monkeypatch.setattr(adversarial, "SHARD", SHARD)
    monkeypatch.setattr(tensorfile, "CHUNK", 4096)
    real_save, writes = checkpoint.st_save, []

    def shard_sized_save(tensors, *args, **kwargs):
        rows = max(len(t) for t in tensors.values())
        assert rows <= SHARD, f"a {rows}-row blob was serialised in memory"
        return real_save(tensors, *args, **kwargs)

    class Recording:
        def __init__(self, fh):
            self.fh = fh

        def write(self, chunk):
            writes.append(len(chunk))
            return self.fh.write(chunk)

    real_atomic = tensorfile.atomic_file

    @contextlib.contextmanager
    def recording_atomic(path):
        with real_atomic(path) as fh:
            yield Recording(fh)

    monkeypatch.setattr(checkpoint, "st_save", shard_sized_save)
    monkeypatch.setattr(tensorfile, "atomic_file", recording_atomic)
    folder, result, _ = _make(anet, tmp_path)
    size = (folder / "adv.safetensors").stat().st_size
    assert sum(writes) == size and size > 100 * 784 * 4  # the whole set went through the recorded writes
    assert max(writes) <= 4096 + 1024  # ... in chunks (the header is the one write above a chunk's data)
    assert isinstance(result.adv, StoredImages) and len(result.adv) == N
