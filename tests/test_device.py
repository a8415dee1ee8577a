import pytest
import torch

from advshield.device import select_device
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
