"""Trained detectors round-trip through safetensors + card; a corrupted file or another classifier is refused."""

import pytest
import torch

from advshield.detectors import load_detector, save_detector
from advshield.detectors.defense_gan import Projection
from advshield.detectors import build_detector
from advshield.errors import CheckpointError
from advshield.zoo import load_pretrained


@pytest.mark.parametrize("kind", ["magnet-divergence", "cmag-ssim", "defense-gan"])
def test_saved_detector_gives_the_same_scores_and_threshold(tmp_path, kind):
    classifier, card = load_pretrained("a-net")
    torch.manual_seed(0)
    clean = torch.rand(64, 1, 28, 28)
    projection = Projection(steps=3, restarts=1)
    det, _ = build_detector(kind, classifier, clean, epochs=1, seed=0, device=torch.device("cpu"),
                            projection=projection)
    det.calibrate_fpr(det.scores(clean.split(32)), 0.1)
    written = save_detector(tmp_path / "d.safetensors", det, kind, classifier=classifier, classifier_card=card,
                            image_shape=(1, 28, 28))
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "d.safetensors")
    assert stored and not any("classifier" in k for k in stored)  # the target's weights are not copied
    assert written["target_sha256"] == card["sha256"] and "_threshold" in stored
    loaded, read = load_detector(tmp_path / "d.safetensors", classifier, card["sha256"])
    x = torch.rand(8, 1, 28, 28)
    assert loaded.threshold == pytest.approx(det.threshold) and loaded.calibration["rule"] == "fpr"
    torch.testing.assert_close(loaded.scores([x]), det.scores([x]))
    assert read["detector"] == kind


def test_detector_checkpoint_refuses_corruption_and_another_classifier(tmp_path):
    a, ca = load_pretrained("a-net")
    _, cb = load_pretrained("b-net")
    det, _ = build_detector("magnet-error", a, torch.rand(32, 1, 28, 28), epochs=1, seed=0,
                            device=torch.device("cpu"))
    path = tmp_path / "d.safetensors"
    save_detector(path, det, "magnet-error", classifier=a, classifier_card=ca, image_shape=(1, 28, 28))
    with pytest.raises(CheckpointError, match="trained for classifier"):
        load_detector(path, a, cb["sha256"])
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_detector(path, a, ca["sha256"])
