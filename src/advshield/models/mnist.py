"""MNIST target classifiers, each as its paper's table gives it (28x28x1 input).

Convolutions without stated padding are 'valid' (no padding), as in the
Keras/cleverhans code the papers built on.
"""

from __future__ import annotations

from torch import nn

from advshield.models.base import MNIST_MEAN, MNIST_STD, Classifier, conv, fc, register_model

_MNIST = dict(input_shape=(1, 28, 28), num_classes=10, mean=MNIST_MEAN, std=MNIST_STD)


def _mnist(stages, last_conv):
    return Classifier(stages, last_conv=last_conv, **_MNIST)


@register_model("a-net", dataset="mnist", paper="CRU-Net Table 1")
def a_net() -> Classifier:
    """CRU-Net Table 1, A-net: Conv(64,5x5,1), Conv(64,3x3,2), Dropout(0.5), FC(10).

    The table puts a ReLU after FC(10); a ReLU on logits zeroes their
    gradients and hides attacks (gradient masking), so we leave it out.
    """
    return _mnist([("conv1", conv(1, 64, 5)), ("conv2", conv(64, 64, 3, 2)),
                   ("flatten", nn.Sequential(nn.Dropout(0.5), nn.Flatten())), ("logits", nn.Linear(64 * 11 * 11, 10))],
                  "conv2")


@register_model("b-net", dataset="mnist", paper="CRU-Net Table 1")
def b_net() -> Classifier:
    """CRU-Net Table 1, B-net: 4x Conv(64,3x3) with two max-pools, FC(200)x2 with Dropout(0.5), FC(10)."""
    return _mnist([("conv1", conv(1, 64, 3)), ("conv2", conv(64, 64, 3)), ("pool1", nn.MaxPool2d(2)),
                   ("conv3", conv(64, 64, 3)), ("conv4", conv(64, 64, 3)), ("pool2", nn.MaxPool2d(2)),
                   ("flatten", nn.Flatten()), ("fc1", fc(64 * 4 * 4, 200, 0.5)), ("fc2", fc(200, 200, 0.5)),
                   ("logits", nn.Linear(200, 10))], "conv4")


@register_model("model-a", dataset="mnist", paper="CRU-Net Table 8 / Defense-GAN")
def model_a() -> Classifier:
    """Defense-GAN model A: Conv(64,5x5,1), Conv(64,5x5,2), Dropout(0.25), FC(128), Dropout(0.5), FC(10)."""
    return _mnist([("conv1", conv(1, 64, 5)), ("conv2", conv(64, 64, 5, 2)),
                   ("flatten", nn.Sequential(nn.Dropout(0.25), nn.Flatten())), ("fc1", fc(64 * 10 * 10, 128, 0.5)),
                   ("logits", nn.Linear(128, 10))], "conv2")


@register_model("model-b", dataset="mnist", paper="CRU-Net Table 8 / Defense-GAN")
def model_b() -> Classifier:
    """Defense-GAN model B: Dropout(0.2), Conv(64,8x8,2,'same'), Conv(128,6x6,2), Conv(128,5x5,1), Dropout(0.5), FC(10)."""
    return _mnist([("dropout", nn.Dropout(0.2)), ("conv1", conv(1, 64, 8, 2, 3)), ("conv2", conv(64, 128, 6, 2)),
                   ("conv3", conv(128, 128, 5)), ("flatten", nn.Sequential(nn.Dropout(0.5), nn.Flatten())),
                   ("logits", nn.Linear(128, 10))], "conv3")


@register_model("model-c", dataset="mnist", paper="CRU-Net Table 8 / Defense-GAN")
def model_c() -> Classifier:
    """Defense-GAN model C: Conv(128,3x3,1), Conv(64,3x3,2), Dropout(0.25), FC(128), Dropout(0.5), FC(10)."""
    return _mnist([("conv1", conv(1, 128, 3)), ("conv2", conv(128, 64, 3, 2)),
                   ("flatten", nn.Sequential(nn.Dropout(0.25), nn.Flatten())), ("fc1", fc(64 * 12 * 12, 128, 0.5)),
                   ("logits", nn.Linear(128, 10))], "conv2")


@register_model("model-d", dataset="mnist", paper="CRU-Net Table 8 / Defense-GAN")
def model_d() -> Classifier:
    """Defense-GAN model D (no convolution): FC(200), Dropout(0.5), FC(200), Dropout(0.5), FC(10)."""
    return _mnist([("flatten", nn.Flatten()), ("fc1", fc(784, 200, 0.5)), ("fc2", fc(200, 200, 0.5)),
                   ("logits", nn.Linear(200, 10))], None)


@register_model("m1", dataset="mnist", paper="Deep image restoration Table 3")
def m1() -> Classifier:
    """DIR Table 3, M1: Conv(32)/Conv(64)/Conv(128) 3x3, each + MaxPool(2); Dropout(0.2), Dense(128), Dropout(0.2), Dense(10)."""
    return _mnist([("conv1", conv(1, 32, 3)), ("pool1", nn.MaxPool2d(2)), ("conv2", conv(32, 64, 3)),
                   ("pool2", nn.MaxPool2d(2)), ("conv3", conv(64, 128, 3)), ("pool3", nn.MaxPool2d(2)),
                   ("flatten", nn.Sequential(nn.Flatten(), nn.Dropout(0.2))), ("fc1", fc(128, 128, 0.2)),
                   ("logits", nn.Linear(128, 10))], "conv3")


@register_model("m2", dataset="mnist", paper="Deep image restoration Table 3")
def m2() -> Classifier:
    """DIR Table 3, M2: Flatten, Dense(56), Dense(56), Dense(10)."""
    return _mnist([("flatten", nn.Flatten()), ("fc1", fc(784, 56)), ("fc2", fc(56, 56)),
                   ("logits", nn.Linear(56, 10))], None)


@register_model("lenet5", dataset="mnist", paper="LeCun et al. 1998 (DIR transfer target)")
def lenet5() -> Classifier:
    """LeNet-5: Conv(6,5x5,pad 2), pool, Conv(16,5x5), pool, FC(120), FC(84), FC(10); ReLU and max-pool."""
    return _mnist([("conv1", conv(1, 6, 5, 1, 2)), ("pool1", nn.MaxPool2d(2)), ("conv2", conv(6, 16, 5)),
                   ("pool2", nn.MaxPool2d(2)), ("flatten", nn.Flatten()), ("fc1", fc(16 * 5 * 5, 120)),
                   ("fc2", fc(120, 84)), ("logits", nn.Linear(84, 10))], "conv2")


@register_model("alexnet-mnist", dataset="mnist", paper="Krizhevsky et al. 2012, scaled to 28x28 (DIR transfer target)")
def alexnet_mnist() -> Classifier:
    """Small AlexNet: 5 convs (32-64-128-128-64, 3x3) with 3 max-pools, FC(256)x2 with Dropout(0.5), FC(10)."""
    return _mnist([("conv1", conv(1, 32, 3, 1, 1)), ("pool1", nn.MaxPool2d(2)), ("conv2", conv(32, 64, 3, 1, 1)),
                   ("pool2", nn.MaxPool2d(2)), ("conv3", conv(64, 128, 3, 1, 1)), ("conv4", conv(128, 128, 3, 1, 1)),
                   ("conv5", conv(128, 64, 3, 1, 1)), ("pool3", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
                   ("fc1", fc(64 * 3 * 3, 256, 0.5)), ("fc2", fc(256, 256, 0.5)), ("logits", nn.Linear(256, 10))],
                  "conv5")


@register_model("dkn-a", dataset="mnist", paper="Defense kernel network, MNIST model A")
def dkn_a() -> Classifier:
    """DKN model A (4 conv, 2 max-pool, 3 FC); widths as Carlini-Wagner's MNIST model: 32-32-pool-64-64-pool-200-200-10."""
    return _mnist([("conv1", conv(1, 32, 3)), ("conv2", conv(32, 32, 3)), ("pool1", nn.MaxPool2d(2)),
                   ("conv3", conv(32, 64, 3)), ("conv4", conv(64, 64, 3)), ("pool2", nn.MaxPool2d(2)),
                   ("flatten", nn.Flatten()), ("fc1", fc(64 * 4 * 4, 200)), ("fc2", fc(200, 200)),
                   ("logits", nn.Linear(200, 10))], "conv4")


@register_model("dkn-b", dataset="mnist", paper="Defense kernel network, MNIST model B")
def dkn_b() -> Classifier:
    """DKN model B (4 conv, 4 max-pool, 1 FC): 3x3 same convs 32-64-128-128, each + MaxPool(2), FC(10)."""
    return _mnist([("conv1", conv(1, 32, 3, 1, 1)), ("pool1", nn.MaxPool2d(2)), ("conv2", conv(32, 64, 3, 1, 1)),
                   ("pool2", nn.MaxPool2d(2)), ("conv3", conv(64, 128, 3, 1, 1)), ("pool3", nn.MaxPool2d(2)),
                   ("conv4", conv(128, 128, 3, 1, 1)), ("pool4", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
                   ("logits", nn.Linear(128, 10))], "conv4")
