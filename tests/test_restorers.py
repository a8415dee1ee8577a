import pytest
import torch
from torch import nn

from advshield.checkpoint import save_model
from advshield.defenses import DEFENSES, load_defense, restorer_kwargs, save_defense
from advshield.errors import CheckpointError, InputError
from advshield.models import count_parameters, create_model

RESTORERS = DEFENSES.names(kind="restorer")


def test_all_restorers_are_registered():
    assert set(RESTORERS) == {"cru-net", "dir", "unet", "fusionnet", "dkn"}


@pytest.mark.parametrize("name", RESTORERS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_restorer_maps_images_to_images(name, shape):
    torch.manual_seed(0)
    net = DEFENSES.create(name, **restorer_kwargs(shape)).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    x.requires_grad_(True)
    net(x).sum().backward()  # differentiable end to end: adaptive attacks get exact gradients
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("name", RESTORERS)
def test_wrong_shape_is_rejected(name):
    net = DEFENSES.create(name, in_channels=1, image_size=28)
    with pytest.raises(InputError, match="expects images of shape"):
        net(torch.rand(2, 3, 32, 32))


def test_cru_net_is_a_clipped_global_residual():
    net = DEFENSES.create("cru-net", in_channels=1, image_size=28, width=8).eval()
    nn.init.zeros_(net.head.weight)
    nn.init.zeros_(net.head.bias)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(net(x), x)  # F(x) = 0 -> clip(x + 0) = x (Eq. 11)
    nn.init.constant_(net.head.bias, 2.0)
    assert torch.equal(net(x), torch.ones_like(x))  # clipped to [0, 1]


def test_cru_net_levels_follow_image_size():
    assert DEFENSES.create("cru-net", in_channels=1, image_size=28).arch_kwargs["levels"] == 2  # 28-14-7
    assert DEFENSES.create("cru-net", in_channels=3, image_size=32).arch_kwargs["levels"] == 2  # 32-16-8


def test_dir_parameter_counts_against_the_paper():
    cifar = count_parameters(DEFENSES.create("dir", in_channels=3, image_size=32))
    assert abs(cifar - 19.667e6) / 19.667e6 < 1e-3  # Table 2: 19.667 M
    mnist = count_parameters(DEFENSES.create("dir", in_channels=1, image_size=28))
    missing = count_parameters(nn.ConvTranspose2d(256, 256, 3, 1, 1))  # the layer Table 1 seems to omit
    assert round((mnist + missing) / 1e4) == 1593  # 15.93 M with it; 15.34 M as printed


def test_dir_has_no_variant_for_other_sizes():
    with pytest.raises(InputError, match="variants"):
        DEFENSES.create("dir", in_channels=1, image_size=64)


def test_defense_checkpoint_round_trip_and_rejections(tmp_path):
    net = DEFENSES.create("unet", in_channels=1, image_size=28, width=8).eval()
    path = tmp_path / "unet.safetensors"
    save_defense(path, net, "unet", {"dataset": "mnist"})
    loaded, card = load_defense(path)
    x = torch.rand(2, 1, 28, 28)
    for (k, a), (_, b) in zip(loaded.state_dict().items(), net.state_dict().items()):
        assert torch.equal(a, b), k  # the same weights (stored channels-last on the CPU for speed) ...
    torch.testing.assert_close(loaded(x), net(x))  # ... give the same output up to the convolution's rounding
    assert card["arch_kwargs"]["width"] == 8
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError):
        load_defense(path)
    target = tmp_path / "anet.safetensors"
    save_model(target, create_model("a-net"), {"architecture": "a-net", "dataset": "mnist"})
    with pytest.raises(CheckpointError, match="not a defense"):
        load_defense(target)


def test_cru_net_clip_passes_gradient_while_training():
    """A saturated output must still learn (straight-through clip); evaluation keeps the exact clamp."""
    net = DEFENSES.create("cru-net", in_channels=1, image_size=28, width=8)
    nn.init.constant_(net.head.bias, 5.0)  # every output far above 1
    x = torch.rand(2, 1, 28, 28)
    net.train()
    out = net(x)
    assert torch.equal(out, torch.ones_like(x))  # the forward value is still clipped (Eq. 11)
    ((out - x) ** 2).mean().backward()
    assert float(net.head.bias.grad.abs().sum()) > 0
    net.zero_grad()
    net.eval()
    ((net(x) - x) ** 2).mean().backward()
    assert float(net.head.bias.grad.abs().sum()) == 0  # exact clamp gradient in evaluation


def test_dkn_applies_per_pixel_kernels_to_shifted_crops():
    """Eq. 3 checked against a direct loop over the m^2 shifts of the zero-padded input."""
    torch.manual_seed(0)
    net = DEFENSES.create("dkn", in_channels=3, image_size=8, m=3, width=4, levels=1).eval()
    x = torch.rand(2, 3, 8, 8) * 0.5
    d = net.kernels(x)  # (N, C, 9, H, W)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    crops = [xp[..., i:i + 8, j:j + 8] for i in range(3) for j in range(3)]
    expected = sum(d[:, :, k] * crops[k] for k in range(9)) / 9
    assert torch.allclose(net(x), expected.clamp(0, 1), atol=1e-6)


def test_dkn_starts_near_the_identity_and_pads_mnist_to_32():
    net = DEFENSES.create("dkn", in_channels=1, image_size=28).eval()
    assert net.pad == 4 and net.backbone.image_size == 32
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert float((net(x) - x).abs().mean()) < 0.1
