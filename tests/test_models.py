import pytest
import torch

from advshield.errors import AdvShieldError, InputError
from advshield.models import MODELS, create_model
from advshield.registry import Registry

EXPECTED_PARAMS = {"a-net": 116_042, "b-net": 358_634, "resnet20": 272_474, "resnet18": 11_173_962}


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_shapes_and_features(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.rand(2, *model.input_shape)
    logits = model(x)
    assert logits.shape == (2, model.num_classes) and torch.isfinite(logits).all()
    feats = model.features(x)
    assert list(feats) == model.feature_names and feats[model.feature_names[-1]].shape == logits.shape
    assert torch.allclose(feats[model.feature_names[-1]], logits, atol=1e-5)
    if model.last_conv is not None:
        assert feats[model.last_conv].ndim == 4
    with pytest.raises(InputError, match="expects images of shape"):
        model(torch.rand(2, model.input_shape[0], 20, 20))


@pytest.mark.parametrize("name,count", EXPECTED_PARAMS.items())
def test_parameter_counts(name, count):
    assert sum(p.numel() for p in create_model(name).parameters()) == count


def test_normalisation_lives_inside_the_model():
    model = create_model("a-net")
    assert torch.allclose(model.normalize(torch.full((1, 1, 1, 1), 0.1307)), torch.zeros(1))
    assert "normalize.mean" in model.state_dict()


def test_features_subset_and_unknown():
    model = create_model("b-net").eval()
    out = model.features(torch.rand(1, 1, 28, 28), ["conv4"])
    assert list(out) == ["conv4"] and out["conv4"].shape == (1, 64, 8, 8)
    with pytest.raises(InputError, match="unknown feature layer"):
        model.features(torch.rand(1, 1, 28, 28), ["nope"])


def test_registry_lists_papers_models_and_rejects_unknown():
    mnist = set(MODELS.names(dataset="mnist"))
    assert {"a-net", "b-net", "model-a", "model-b", "model-c", "model-d", "m1", "m2", "lenet5", "alexnet-mnist",
            "dkn-a", "dkn-b"} <= mnist
    assert {"densenet", "mobilenetv2", "vgg19-bn", "resnet18"} <= set(MODELS.names(dataset="cifar10"))
    with pytest.raises(AdvShieldError, match="unknown model 'lenet7'; choose one of"):
        create_model("lenet7")


def test_registry_refuses_double_registration():
    reg: Registry[int] = Registry("thing")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError):
        reg.register("x")(lambda: 2)
    assert reg.create("x") == 1 and "x" in reg and len(reg) == 1


def test_propagation_paper_models_observe_table_6_layers():
    """Stage counts follow Table 6 of perturbation-propagation.txt (one stage per observed layer)."""
    expected = {"resnet-v2-50": 8, "vgg19": 8, "senet-154": 7, "inception-resnet-v2": 14}
    for name, count in expected.items():
        assert len(create_model(name).feature_names) == count, name
    dense = create_model("densenet-201", blocks=(1, 1, 1, 1), growth=4)
    assert dense.feature_names[-2:] == ["pool", "fc"]
    conv_head = create_model("densenet-201-conv", blocks=(1, 1, 1, 1), growth=4)
    assert isinstance(conv_head.stages.logits[0], torch.nn.Conv2d) and conv_head.stages.logits[0].kernel_size == (4, 4)
    assert not any(isinstance(m, torch.nn.Linear) for m in conv_head.modules())  # convolutions only
    prelu = create_model("densenet-201-prelu", blocks=(1, 1, 1, 1), growth=4)
    assert isinstance(prelu.stages.logits, torch.nn.PReLU) and float(prelu.stages.logits.weight) == 0.25
    small = create_model("senet-154", width=4, blocks=(1, 1, 1, 1), groups=2)
    assert small(torch.rand(2, 3, 32, 32)).shape == (2, 10)
