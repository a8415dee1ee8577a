"""MagNet's reformer and Defense-GAN's reconstruction, registered as defenses built from a saved detector."""

import pytest
import torch

from advshield.data import load_dataset
from advshield.defenses import DEFENSES
from advshield.detectors import Projection, build_detector, save_detector
from advshield.errors import CheckpointError
from advshield.zoo import load_pretrained


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, card = load_pretrained("a-net")
    clean = load_dataset("mnist", "train").tensors(slice(0, 256))[0]
    folder = tmp_path_factory.mktemp("detectors")
    out = {}
    for kind in ("magnet-error", "defense-gan"):
        det, _ = build_detector(kind, model, clean, epochs=1, seed=0, device=torch.device("cpu"),
                                projection=Projection(steps=3, restarts=2))
        det.calibrate_fpr(det.score(clean[:64]), 0.05)
        save_detector(folder / f"{kind}.safetensors", det, kind, classifier=model, classifier_card=card,
                      image_shape=(1, 28, 28), recipe={})
        out[kind] = (det, folder / f"{kind}.safetensors")
    return out


def test_magnet_reformer_is_the_saved_autoencoder(saved):
    det, path = saved["magnet-error"]
    reformer = DEFENSES.create("magnet-reformer", checkpoint=str(path))
    x = load_dataset("mnist", "test").tensors(slice(0, 8))[0]
    with torch.no_grad():
        assert torch.allclose(reformer(x), det.autoencoder(x), atol=1e-6)
    assert not reformer.randomized and DEFENSES.entry("magnet-reformer").meta["kind"] == "reformer"


def test_defense_gan_reconstruction_is_randomised_and_uses_bpda(saved):
    _, path = saved["defense-gan"]
    rec = DEFENSES.create("defense-gan-reconstruction", checkpoint=str(path))
    x = load_dataset("mnist", "test").tensors(slice(0, 4))[0]
    with torch.no_grad():
        out = rec(x)
    assert out.shape == x.shape and rec.randomized and not rec.differentiable


def test_a_checkpoint_of_another_detector_is_refused(saved):
    _, path = saved["magnet-error"]
    with pytest.raises(CheckpointError, match="not one of defense-gan"):
        DEFENSES.create("defense-gan-reconstruction", checkpoint=str(path))
