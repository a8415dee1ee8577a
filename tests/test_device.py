import pytest
import torch

from advshield.device import fast_layout, select_device
from advshield.errors import AdvShieldError


def test_auto_and_cpu():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")


def test_unknown_or_unavailable():
    with pytest.raises(AdvShieldError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(AdvShieldError, match="no CUDA GPU"):
            select_device("cuda")


def test_loaded_models_use_the_fast_conv_layout_without_changing_results():
    from advshield.checkpoint import load_model
    from advshield.models import create_model
    from advshield.zoo import pretrained_path

    model, card = load_model(pretrained_path("a-net", "mnist"), "cpu")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = create_model(card["architecture"], **card.get("arch_kwargs", {})).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
    g_fast, = torch.autograd.grad(model(x).logsumexp(1).sum(), x)
    g_plain, = torch.autograd.grad(plain(x).logsumexp(1).sum(), x)
    assert g_fast.shape == x.shape and torch.allclose(g_fast, g_plain, atol=1e-5)  # attacks see the same gradient
    assert fast_layout(torch.nn.Conv2d(1, 2, 3), "meta").weight.is_contiguous()  # other devices: left alone
