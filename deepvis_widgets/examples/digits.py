"""A small CNN on scikit-learn's 8x8 digits, upsampled to 32x32.

Four 3x3 conv layers (the last one dilated, so each of its outputs sees the
whole digit), global average pooling and one linear layer, so the original
CAM applies as well as Grad-CAM: ~20k parameters. The last feature map is the
output of ``model.features[-1]`` (48 x 8 x 8).

``scripts/train_digits.py`` trains two copies: one on the true labels and one
on randomly permuted training labels, the "label randomization" model of
Adebayo et al. (2018): a saliency method whose maps look the same for both
models is not explaining what the model learned.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._common import load_weights, save_weights, seed_everything, weights_path

__all__ = ["DigitsCNN", "DigitsData", "digits_cnn", "digits_data", "train_digits"]

WEIGHTS = "digits_cnn.pt"
WEIGHTS_PERMUTED = "digits_cnn_permuted.pt"
#: Seed of the fixed 80/20 train/test split.
SPLIT_SEED = 0


class DigitsData(NamedTuple):
    """Train/test split of the digits as ``(N, 1, 32, 32)`` float32 in [0, 1] and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def upsample(images: np.ndarray | torch.Tensor, size: int = 32) -> torch.Tensor:
    """8x8 digit images (values 0..16) to ``(N, 1, size, size)`` float32 in [0, 1].

    Parameters
    ----------
    images
        ``(N, 8, 8)`` or ``(N, 64)`` array as in ``sklearn.datasets.load_digits``.
    size
        Output side (32 for the shipped model).

    Example
    -------
    >>> upsample(np.full((2, 64), 16.0)).shape
    torch.Size([2, 1, 32, 32])
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, 1, 8, 8) / 16.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def digits_data(test_fraction: float = 0.2) -> DigitsData:
    """scikit-learn's 1,797 digits, upsampled to 32x32, split 80/20 with a fixed seed.

    Parameters
    ----------
    test_fraction
        Share of examples held out for testing (0.2 for the published accuracy).

    Example
    -------
    >>> data = digits_data()
    >>> tuple(data.x_train.shape), tuple(data.x_test.shape)
    ((1438, 1, 32, 32), (359, 1, 32, 32))
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    n_test = round(len(order) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    x = upsample(digits.images)
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    return DigitsData(x[train], y[train], x[test], y[test])


class DigitsCNN(nn.Module):
    """conv(8)-pool-conv(16)-pool-conv(32)-dilated conv(48)-GAP-linear(10), 1 x 32 x 32 input.

    Example
    -------
    >>> DigitsCNN()(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 48, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, 10)`` for images ``(batch, 1, 32, 32)``."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"x must have shape (batch, 1, H, W), got {tuple(x.shape)}")
        return self.fc(self.pool(self.features(x)).flatten(1))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode, no grad).

    Example
    -------
    >>> data = digits_data()
    >>> accuracy(digits_cnn(), data.x_test, data.y_test) >= 0.98
    True
    """
    was_training = model.training
    model.eval()
    try:
        return float((model(x).argmax(-1) == y).float().mean())
    finally:
        model.train(was_training)


def train_digits(
    epochs: int = 30,
    seed: int = 0,
    *,
    permuted_labels: bool = False,
    batch_size: int = 64,
    lr: float = 1e-2,
) -> tuple[DigitsCNN, dict[str, Any]]:
    """Trains :class:`DigitsCNN` on :func:`digits_data`; deterministic for a seed.

    Parameters
    ----------
    epochs
        Passes over the 1,438 training images (23 steps each at batch 64).
    seed
        Seeds weights, batch order and (with ``permuted_labels``) the label shuffle.
    permuted_labels
        Train on a random permutation of the training labels.
    batch_size, lr
        Adam with a one-cycle schedule peaking at ``lr``.

    Returns
    -------
    model : DigitsCNN
        Trained, in eval mode.
    metrics : dict
        ``train_accuracy`` (against the labels it was trained on),
        ``test_accuracy`` (true labels), ``steps``, ``seconds``.

    Example
    -------
    >>> model, metrics = train_digits(epochs=1)  # doctest: +SKIP
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    generator = seed_everything(seed)
    data = digits_data()
    y_train = data.y_train
    if permuted_labels:
        y_train = y_train[torch.randperm(len(y_train), generator=generator)]
    model = DigitsCNN()
    n = len(y_train)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for batch in order.split(batch_size):
            loss = F.cross_entropy(model(data.x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    metrics = {
        "train_accuracy": accuracy(model, data.x_train, y_train),
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "steps": steps,
        "seconds": seconds,
    }
    return model, metrics


def save_digits(model: DigitsCNN, path: Any) -> int:
    """Writes a trained model's weights (float16); returns the file size in bytes.

    Example
    -------
    >>> save_digits(model, "digits_cnn.pt")  # doctest: +SKIP
    """
    return save_weights(model.state_dict(), path)


def digits_cnn(permuted_labels: bool = False) -> DigitsCNN:
    """The shipped digits CNN in eval mode.

    Test accuracy on ``digits_data().x_test`` (359 images): 98.9% (train
    99.7%) for the model trained on true labels (30 epochs, Adam, one-cycle to
    lr 1e-2; ~10 s on an idle core, ~65 s on a heavily shared one). The
    permuted-label copy (100 epochs at lr 2e-3) fits 29% of its shuffled
    training labels (chance: 10%) and gets 13% of the true test labels: its
    weights were shaped by labels unrelated to the images, the control of the
    label-randomization check.

    Parameters
    ----------
    permuted_labels
        Load the copy trained on randomly permuted labels.

    Example
    -------
    >>> model = digits_cnn()
    >>> model(digits_data().x_test[:1]).shape
    torch.Size([1, 10])
    """
    if not isinstance(permuted_labels, bool):
        raise TypeError(f"permuted_labels must be a bool, got {permuted_labels!r}")
    model = DigitsCNN()
    model.load_state_dict(
        load_weights(weights_path(WEIGHTS_PERMUTED if permuted_labels else WEIGHTS))
    )
    return model.eval()
