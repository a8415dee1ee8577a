"""benchmarks/gpu_options.py: options wrap the pipeline without hiding its defense's attributes, global flags
come back, and an option that leaves more robust images than strict float32 is marked weaker."""

import sys
from pathlib import Path

import torch

from advshield.attacks import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_options as go  # noqa: E402


class _Defense(torch.nn.Module):
    randomized = True

    def forward(self, x):
        return x.clamp(0, 1)


def test_wrapped_parts_keep_their_attributes_and_return_float32():
    pipe = Pipeline(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3)),
                       _Defense())
    pipe(torch.rand(2, 1, 5, 5))  # materialise the lazy layer
    for option in ("bf16", "channels-last"):
        wrapped = go.wrap(Pipeline(pipe.classifier, _Defense()), option)
        assert wrapped.randomized and wrapped.defense.randomized
        out = wrapped(torch.rand(2, 1, 5, 5))
        assert out.dtype == torch.float32 and out.shape == (2, 3)


def test_flags_are_restored_after_each_option():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    with go.flags("no-tf32"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with go.flags("cudnn-benchmark"):
        assert torch.backends.cudnn.benchmark
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.benchmark) == before


def test_an_option_that_weakens_the_attack_is_marked():
    def run(acc, sec):
        return {"seconds": [sec], "robust_accuracy": [acc], "error": None, "median": sec, "min": sec}

    cell = {"n": 100, "runs": {"default": run(0.10, 2.0), "no-tf32": run(0.10, 2.2), "bf16": run(0.12, 1.0),
                               "fp16": run(0.11, 1.0), "cuda-graphs": {**run(0, 0), "error": "RuntimeError: x"}}}
    assert "weaker" in go.verdict(cell, "bf16") and "2.00x" in go.verdict(cell, "bf16")
    assert "weaker" not in go.verdict(cell, "fp16")  # one image: within the allowance
    assert go.verdict(cell, "cuda-graphs").startswith("failed")


def test_run_to_run_variation_is_not_weakening():
    """Float32 on a GPU is not bit-reproducible: an option is weaker only when all its rounds lie above every
    round of the strict reference by more than one image, and the reference is never judged against itself."""
    def run(accs):
        return {"seconds": [1.0] * len(accs), "robust_accuracy": accs, "error": None, "median": 1.0, "min": 1.0}

    cell = {"n": 100, "runs": {"default": run([0.05, 0.07, 0.06]), "channels-last": run([0.07, 0.08, 0.07]),
                               "bf16": run([0.14, 0.14, 0.15])}}
    assert "weaker" not in go.verdict(cell, "default")  # the reference here (no no-tf32 run)
    assert "weaker" not in go.verdict(cell, "channels-last")  # within the reference's spread + one image
    assert "weaker" in go.verdict(cell, "bf16")


def test_options_leave_the_shared_pipeline_untouched():
    """The run context shares one classifier and restorer between all options' pipelines: each option works on
    copies, so channels-last (which converts weights in place) cannot leak into the reference or other options."""
    conv = torch.nn.Conv2d(3, 4, 3)
    pipe = Pipeline(torch.nn.Sequential(conv, torch.nn.Flatten()), _Defense())
    wrapped = go.wrap(pipe, "channels-last")
    assert pipe.classifier[0] is conv and not conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert wrapped.classifier.module[0].weight.is_contiguous(memory_format=torch.channels_last)  # the copy only
    assert wrapped.defense is not pipe.defense


def test_graphed_calls_start_a_step_and_hand_back_a_copy(monkeypatch):
    """The CUDA-graphs option's wrapper: a graph replay writes its output into the same static buffer each time,
    and the attack keeps outputs across calls, so each call starts a new graph step and hands back a copy (the
    first H100 run failed without it). A module returning one persistent buffer stands in for the replay."""

    class StaticOutput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.out = torch.zeros(4, 2)
            self.weight = torch.nn.Parameter(torch.ones(3, 2))

        def forward(self, x):
            self.out.copy_(x @ self.weight)  # overwritten by every call, as a replayed graph's output is
            return self.out

    steps = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    module = StaticOutput()
    graphed = go.Graphed(module)
    x = torch.rand(4, 3)
    first = graphed(x)
    second = graphed(x + 1)
    assert len(steps) == 2 and graphed.weight is module.weight  # a step per call; attributes reach the module
    assert first.data_ptr() != module.out.data_ptr() and torch.equal(first, x @ module.weight)  # kept intact
    assert not torch.equal(first, second)


def test_weaker_is_counted_in_images_of_float32_accuracies():
    """Accuracies arrive as float32 fractions (1/500 is 0.0020000000949949026): one image more than the reference
    is within the allowance, two are weaker."""
    def run(images):
        acc = [float(torch.tensor(k / 500, dtype=torch.float32)) for k in images]
        return {"seconds": [1.0] * len(acc), "robust_accuracy": acc, "error": None, "median": 1.0, "min": 1.0}

    cell = {"n": 500, "runs": {"no-tf32": run([11, 12]), "default": run([12]), "one": run([13, 13]),
                               "two": run([14, 15])}}
    assert "weaker" not in go.verdict(cell, "one") and "weaker" in go.verdict(cell, "two")
    cell["runs"]["empty"] = {"seconds": [], "robust_accuracy": [], "error": None}
    assert "weaker" not in go.verdict(cell, "empty")
