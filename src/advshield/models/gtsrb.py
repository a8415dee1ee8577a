"""GTSRB target classifier (32x32x3, 43 classes).

The CMAG paper (cmag-detection.txt, Sec. 4.1) evaluates on GTSRB resized to 32x32 but does not describe
its target model; we use a small VGG-style CNN of the kind common for GTSRB.
"""

from __future__ import annotations

from torch import nn

from advshield.models.base import Classifier, conv, fc, register_model

GTSRB_MEAN, GTSRB_STD = (0.3398, 0.3117, 0.3210), (0.2755, 0.2647, 0.2712)  # offline training split


@register_model("gtsrb-cnn", dataset="gtsrb", paper="CMAG Sec. 4.1 (target unspecified; VGG-style CNN)")
def gtsrb_cnn(width: int = 32) -> Classifier:
    """Conv(w)x2, pool, Conv(2w)x2, pool, Conv(4w), pool, FC(256), Dropout(0.5), FC(43); 3x3 'same' convs."""
    w = width
    return Classifier([("conv1", conv(3, w, 3, padding=1)), ("conv2", conv(w, w, 3, padding=1)),
                       ("pool1", nn.MaxPool2d(2)), ("conv3", conv(w, 2 * w, 3, padding=1)),
                       ("conv4", conv(2 * w, 2 * w, 3, padding=1)), ("pool2", nn.MaxPool2d(2)),
                       ("conv5", conv(2 * w, 4 * w, 3, padding=1)), ("pool3", nn.MaxPool2d(2)),
                       ("flatten", nn.Flatten()), ("fc1", fc(4 * w * 16, 256, 0.5)), ("logits", nn.Linear(256, 43))],
                      input_shape=(3, 32, 32), num_classes=43, mean=GTSRB_MEAN, std=GTSRB_STD, last_conv="conv5")
