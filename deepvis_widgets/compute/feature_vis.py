"""Feature visualization by optimisation (activation maximisation), Lucid/Lucent style.

An image is optimised to excite a channel, a neuron or a class logit. What
makes the results legible rather than adversarial noise are the standard
regularisers of Olah et al., "Feature Visualization" (Distill, 2017),
reimplemented here for current PyTorch:

- a decorrelated parameterisation: the image is a Fourier spectrum scaled by
  ``1 / frequency`` (so all frequencies learn at the same rate) and its colours
  are decorrelated with the ImageNet colour-correlation matrix, then squashed
  into [0, 1] by a sigmoid;
- transformation robustness: every step sees the image padded, jittered,
  scaled and rotated at random (Lucid's ``standard_transforms``);
- optional diversity: samples of one target are pushed apart through the
  cosine similarity of their Gram matrices at the layer.

Each call optimises a batch: one image per (target, sample) pair, each with its
own objective, so eight channels cost one batched forward/backward per step.
The forward pass stops at the objective's layer when it can (an exception from
the hook ends it), so early layers are cheap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._hooks import preserved_model
from .cnn import _tensor, check_channel, model_device, resolve_layer

__all__ = [
    "COLOR_CORRELATION_SVD_SQRT",
    "FeatureVisResult",
    "FourierImage",
    "crop_resize",
    "display_image",
    "evaluate_objective",
    "feature_visualization",
    "random_transform",
]

Objective = Literal["channel", "neuron", "logit"]

#: Square root of the colour correlation of ImageNet pixels (Lucid's ``color_correlation_svd_sqrt``).
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
_COLOR_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))

# Lucid's standard_transforms: pad 12, jitter 8, scale 0.9..1.1, rotate -10..10 degrees, jitter 4.
_PAD = 12
_JITTER = (8, 4)
_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
_ANGLES = tuple(range(-10, 11)) + (0,) * 5


class _Stop(Exception):
    """Raised by the objective's hook to end a forward pass once the layer has run."""


class FourierImage(nn.Module):
    """A batch of images parameterised by scaled Fourier spectra with decorrelated colours.

    Parameters
    ----------
    batch, channels, height, width
        Shape of the images produced.
    sd
        Standard deviation of the initial spectrum (small: a grey start).
    decay_power
        Spectrum scaling ``1 / f ** decay_power``.
    decorrelate
        Apply the colour decorrelation (3 channels only).
    generator
        For a reproducible start.

    Example
    -------
    >>> img = FourierImage(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> x = img()
    >>> x.shape, bool(x.min() >= 0 and x.max() <= 1)
    (torch.Size([2, 3, 32, 32]), True)
    """

    scale: Tensor  # buffers, registered in __init__
    color: Tensor

    def __init__(
        self,
        batch: int,
        channels: int,
        height: int,
        width: int,
        *,
        sd: float = 0.01,
        decay_power: float = 1.0,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.size = (height, width)
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        freqs = torch.sqrt(fx * fx + fy * fy)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / max(height, width)) ** decay_power
        self.register_buffer("scale", scale[None, None, :, :, None].to(device))
        init = torch.randn(batch, channels, height, width // 2 + 1, 2, generator=generator) * sd
        self.spectrum = nn.Parameter(init.to(device))
        self.decorrelate = decorrelate and channels == 3
        self.register_buffer("color", torch.from_numpy(_COLOR_NORMALIZED).to(device))

    def forward(self) -> Tensor:
        """The images ``(batch, channels, H, W)`` in [0, 1]."""
        spectrum = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        image = torch.fft.irfftn(spectrum, s=self.size, norm="ortho") / 4.0
        if self.decorrelate:
            image = torch.einsum("bchw,dc->bdhw", image, self.color)
        return torch.sigmoid(image)


def random_transform(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Lucid's standard transforms: pad 12 (grey), jitter 8, scale, rotate, jitter 4.

    Scale and rotation are drawn per image (one ``affine_grid``/``grid_sample``); the
    jitters are random crops shared by the batch. The output is smaller than the
    input by the jitters (12 pixels) plus the padding's net growth (+24).

    Example
    -------
    >>> random_transform(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 76, 76])
    """
    g = generator
    x = F.pad(images, [_PAD] * 4, mode="constant", value=0.5)
    x = _jitter(x, _JITTER[0], g)
    n = x.shape[0]
    scales = torch.tensor(_SCALES)[torch.randint(len(_SCALES), (n,), generator=g)]
    angles = torch.tensor(_ANGLES, dtype=torch.float32)[torch.randint(len(_ANGLES), (n,), generator=g)] * math.pi / 180
    cos, sin = torch.cos(angles) / scales, torch.sin(angles) / scales
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _jitter(x, _JITTER[1], g)


def _jitter(x: Tensor, d: int, g: torch.Generator | None) -> Tensor:
    dy, dx = (int(v) for v in torch.randint(d, (2,), generator=g))
    return x[..., dy : x.shape[-2] - d + dy, dx : x.shape[-1] - d + dx]


@dataclass
class FeatureVisResult:
    """Images optimised by :func:`feature_visualization`.

    Attributes
    ----------
    images
        ``(targets, samples, H, W, C)`` float32 in [0, 1].
    values
        ``(targets, samples)`` the objective on each final image (untransformed).
    start_values
        ``(targets, samples)`` the objective on the starting images.
    history
        ``(steps, targets)`` the objective during optimisation (transformed
        images, mean over samples).
    layer
        Name of the layer (``''`` for the model's output).
    targets
        The channel (or class) index of each target.
    objective
        ``'channel'``, ``'neuron'`` or ``'logit'``.
    labels
        One display label per target.
    seconds
        Wall time of the optimisation.
    device
        Where it ran.
    """

    images: np.ndarray
    values: np.ndarray
    start_values: np.ndarray
    history: np.ndarray
    layer: str
    targets: list[int]
    objective: str
    labels: list[str]
    seconds: float
    device: str
    settings: dict[str, Any] = field(default_factory=dict)


def _as_targets(channel: Any) -> list[Any]:
    if isinstance(channel, (list, tuple, range)):
        targets = list(channel)
    elif isinstance(channel, (np.ndarray, Tensor)):
        targets = [int(c) for c in channel.reshape(-1).tolist()]
    else:
        targets = [channel]
    if not targets:
        raise ValueError("channel: expected at least one channel index, got an empty sequence")
    return targets


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise TypeError(f"size: expected an int or (height, width), got {size!r}")
    if min(h, w) < 16:
        raise ValueError(f"size: expected at least 16 pixels a side, got {(h, w)}")
    return h, w


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


class _RedirectedClamp(torch.autograd.Function):
    """clamp(x, lo, hi) whose gradient is redirected when the clamp blocks all of it (Lucid's redirected ReLU).

    A channel that is off for the starting image (every input below 0) gets no
    gradient through a ReLU, so optimisation cannot start. Lucid's fix: for an
    image whose clamp gradient is zero everywhere, pass the gradient through
    wherever it pushes ``x`` back into the active range.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, lo: float, hi: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        if math.isinf(ctx.hi):
            plain = torch.ops.aten.threshold_backward(grad, x, ctx.lo)
        else:
            plain = torch.ops.aten.hardtanh_backward(grad, x, ctx.lo, ctx.hi)
        alive = plain.flatten(1).ne(0).any(1)
        if bool(alive.all()):  # the usual case once optimisation is under way
            return plain, None, None
        # grad is d(loss)/d(out): grad < 0 asks for a larger x, grad > 0 for a smaller one.
        wrong_way = ((x < ctx.lo) & (grad > 0)) | ((x > ctx.hi) & (grad < 0))
        redirected = grad.masked_fill(wrong_way, 0.0)
        shape = (-1,) + (1,) * (x.ndim - 1)
        return torch.where(alive.reshape(shape), plain, redirected), None, None


def _redirect_relus(model: nn.Module, session: Any) -> int:
    """Routes every nn.ReLU / nn.ReLU6 / nn.Hardtanh of the model through :class:`_RedirectedClamp` for the session."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            lo, hi = 0.0, math.inf
        elif isinstance(module, nn.Hardtanh):  # includes nn.ReLU6
            lo, hi = float(module.min_val), float(module.max_val)
        else:
            continue
        saved: list[Tensor] = []

        def pre(m: nn.Module, args: tuple[Any, ...], _saved: list[Tensor] = saved) -> Any:
            _saved[:] = [args[0]]
            # An in-place activation would overwrite the input we need: give it a copy.
            return (args[0].clone(), *args[1:]) if getattr(m, "inplace", False) else None

        def post(m: nn.Module, args: Any, out: Tensor, _saved: list[Tensor] = saved, _lo: float = lo, _hi: float = hi) -> Tensor:
            x = _saved.pop()
            return _RedirectedClamp.apply(x, _lo, _hi) if x.requires_grad else out

        session.forward_pre_hook(module, pre)
        session.forward_hook(module, post)
        count += 1
    return count


class _Objective:
    """Reads the objective per image from a forward pass; shared by optimisation and evaluation."""

    def __init__(self, model: nn.Module, layer: str | nn.Module | None, objective: str, class_names: Sequence[str] | None) -> None:
        if objective not in ("channel", "neuron", "logit"):
            raise ValueError(f"objective: expected 'channel', 'neuron' or 'logit', got {objective!r}")
        if layer is None and objective != "logit":
            raise ValueError(f"layer: expected a layer name for objective={objective!r} (layer=None means the model's output, objective='logit')")
        self.model = model
        self.kind = objective
        if layer is None:
            self.name, self.module = "", None
        else:
            self.name, self.module = resolve_layer(model, layer)
        self.class_names = class_names
        self.acts: Tensor | None = None

    def hook(self, stop: bool) -> Callable[..., None]:
        def fn(m: nn.Module, args: Any, output: Any) -> None:
            self.acts = _tensor(output)
            if stop:
                raise _Stop

        return fn

    def run(self, x: Tensor, stop: bool) -> Tensor:
        """Forward; the layer's output (or the model's)."""
        self.acts = None
        try:
            out = self.model(x)
        except _Stop:
            out = None
        if self.module is None:
            t = _tensor(out)
            if t is None or t.ndim != 2:
                raise ValueError(f"objective: 'logit' needs a model that returns (N, classes) logits, got {None if t is None else tuple(t.shape)}")
            return t
        if self.acts is None:
            raise RuntimeError(f"layer: {self.name!r} did not run in the forward pass")
        return self.acts

    def check(self, acts: Tensor, targets: list[Any]) -> list[int]:
        where = "the model's output" if self.module is None else f"layer {self.name!r}"
        if self.kind in ("channel", "neuron") and acts.ndim != 4:
            raise ValueError(f"objective: {self.kind!r} needs a layer with a (N, C, H, W) output; {where} gives {tuple(acts.shape)}")
        labels = self.class_names if self.module is None else None
        what = "classes" if self.module is None else "channels"
        return [check_channel(t, acts.shape[1], where, labels=labels, what=what) for t in targets]

    def values(self, acts: Tensor, index: Tensor) -> Tensor:
        """Objective per image; ``index[b]`` is image b's channel."""
        rows = torch.arange(acts.shape[0], device=acts.device)
        if self.kind == "logit":
            return acts[rows, index]
        if self.kind == "neuron":
            h, w = acts.shape[-2:]
            return acts[rows, index, h // 2, w // 2]
        return acts[rows, index].mean(dim=(-1, -2))


def _diversity(acts: Tensor, samples: int) -> Tensor:
    """Mean pairwise cosine similarity of Gram matrices within each target's samples."""
    b, c = acts.shape[:2]
    flat = acts.reshape(b, c, -1)
    grams = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).reshape(b, -1), dim=1)
    grams = grams.reshape(b // samples, samples, -1)
    sim = torch.bmm(grams, grams.transpose(1, 2))
    off = sim.sum(dim=(1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)
    return off / (samples * (samples - 1))


def feature_visualization(
    model: nn.Module,
    layer: str | nn.Module | None,
    channel: int | str | Sequence[int | str],
    size: int | tuple[int, int] = 128,
    steps: int = 256,
    *,
    objective: Objective = "channel",
    samples: int = 1,
    diversity: float = 0.0,
    lr: float = 0.05,
    normalize: Callable[[Tensor], Tensor] | None = None,
    transforms: bool = True,
    decorrelate: bool = True,
    redirect_relu: bool = True,
    channels: int | None = None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FeatureVisResult:
    """Optimises images that maximise a channel, a neuron or a class logit.

    Parameters
    ----------
    model
        Any image model; it runs on its own device (a GPU if the model is on one).
    layer
        Submodule name or module whose output is maximised; None for the model's
        output (``objective='logit'``).
    channel
        Channel (or class) index, or a sequence of them: all are optimised together
        as one batch. With ``class_names``, class names work too.
    size
        Image side, or ``(height, width)``.
    steps
        Optimisation steps (Adam).
    objective
        ``'channel'`` (mean of the channel's map), ``'neuron'`` (its centre position)
        or ``'logit'`` (a class score).
    samples
        Images per target; with ``diversity > 0`` they are pushed apart.
    diversity
        Weight of the diversity penalty (mean Gram-matrix cosine similarity of a
        target's samples at the layer, times ``samples - 1``); Lucid uses 100 with
        raw InceptionV1 activations. Needs a layer with a spatial output.
    lr
        Adam learning rate on the spectrum.
    normalize
        Maps images in [0, 1] to model inputs, e.g. ``lambda x: (x * 255 - 127) / 128``
        for EfficientNet-Lite0. Default: none.
    transforms
        Apply Lucid's random jitter/scale/rotation at every step.
    decorrelate
        Fourier parameterisation with colour decorrelation (False: plain pixels
        through a sigmoid, for comparison).
    redirect_relu
        Lucid's redirected ReLU gradient: while an image's ``nn.ReLU``/``nn.ReLU6``
        passes no gradient at all (a channel that is off for the grey start), let
        it through where it would switch the unit on. Without it such channels
        never move from 0.
    channels
        Input channels of the model (default: the first convolution's).
    class_names
        Labels of the model's outputs, for ``objective='logit'``.
    seed
        Seeds the start and the transforms.
    progress
        Called as ``progress(step, steps)`` after each step.

    Returns
    -------
    FeatureVisResult

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    >>> res = feature_visualization(net, "2", [0, 1], size=32, steps=5)
    >>> res.images.shape, bool((res.values > res.start_values).all())
    ((2, 1, 32, 32, 3), True)
    """
    height, width = _size(size)
    steps = _positive_int(steps, "steps")
    samples = _positive_int(samples, "samples")
    if not isinstance(diversity, (int, float)) or diversity < 0:
        raise ValueError(f"diversity: expected a weight >= 0, got {diversity!r}")
    if diversity > 0 and samples < 2:
        raise ValueError("diversity: needs samples >= 2 (images of one target to push apart)")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    if normalize is not None and not callable(normalize):
        raise TypeError(f"normalize: expected a callable mapping [0, 1] images to model inputs, got {type(normalize).__name__}")
    obj = _Objective(model, layer, objective, class_names)
    if diversity > 0 and obj.module is None:
        raise ValueError("diversity: needs a layer with a spatial output; with layer=None (logits) use diversity=0")
    if channels is None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        channels = convs[0].in_channels if convs else 3
    channels = _positive_int(channels, "channels")
    targets_in = _as_targets(channel)
    device = model_device(model)
    g = torch.Generator().manual_seed(int(seed))
    batch = len(targets_in) * samples
    norm = normalize if normalize is not None else (lambda x: x)

    with preserved_model(model) as session:
        for p in model.parameters():
            p.requires_grad_(False)
        if redirect_relu:  # before the objective's hook, which must see the redirected output
            _redirect_relus(model, session)
        if obj.module is not None:
            session.forward_hook(obj.module, obj.hook(stop=True))
        image = _make_image(batch, channels, height, width, decorrelate, g, device)
        with torch.no_grad():
            start = image()
            acts = obj.run(norm(start), stop=True)
            targets = obj.check(acts, targets_in)
            index = torch.tensor(targets, device=device).repeat_interleave(samples)
            start_values = obj.values(acts, index)
        optimizer = _Adam(list(image.parameters()), lr)
        history = np.zeros((steps, len(targets)), np.float32)
        t0 = time.perf_counter()
        for step in range(steps):
            x = image()
            if transforms:
                x = random_transform(x, g)
            acts = obj.run(norm(x), stop=True)
            vals = obj.values(acts, index)
            loss = -vals.sum()
            if diversity > 0:
                loss = loss + diversity * (samples - 1) * _diversity(acts, samples).sum()
            optimizer.step(torch.autograd.grad(loss, optimizer.params))
            history[step] = vals.detach().reshape(len(targets), samples).mean(1).float().cpu().numpy()
            if progress is not None:
                progress(step + 1, steps)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            final = image()
            values = obj.values(obj.run(norm(final), stop=True), index)

    labels = [_label(obj, t) for t in targets]
    return FeatureVisResult(
        images=final.detach().permute(0, 2, 3, 1).reshape(len(targets), samples, height, width, channels).float().cpu().numpy(),
        values=values.float().cpu().numpy().reshape(len(targets), samples),
        start_values=start_values.float().cpu().numpy().reshape(len(targets), samples),
        history=history,
        layer=obj.name,
        targets=targets,
        objective=objective,
        labels=labels,
        seconds=seconds,
        device=str(device),
        settings={"size": (height, width), "steps": steps, "lr": lr, "samples": samples, "diversity": diversity,
                  "transforms": transforms, "decorrelate": decorrelate, "redirect_relu": redirect_relu, "seed": seed},
    )


class _Adam:
    """Adam (Kingma and Ba), written out: torch.optim's first step imports torch._dynamo (~5 s)."""

    def __init__(self, params: list[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


class _PixelImage(nn.Module):
    """Plain pixels through a sigmoid (no decorrelation): the baseline Lucid compares against."""

    def __init__(self, batch: int, channels: int, height: int, width: int, generator: torch.Generator, device: torch.device) -> None:
        super().__init__()
        self.pixels = nn.Parameter((torch.randn(batch, channels, height, width, generator=generator) * 0.01).to(device))

    def forward(self) -> Tensor:
        return torch.sigmoid(self.pixels)


def _make_image(batch: int, channels: int, h: int, w: int, decorrelate: bool, g: torch.Generator, device: torch.device) -> nn.Module:
    if decorrelate:
        return FourierImage(batch, channels, h, w, generator=g, device=device)
    return _PixelImage(batch, channels, h, w, g, device)


def _label(obj: _Objective, target: int) -> str:
    if obj.module is None:
        if obj.class_names is not None and target < len(obj.class_names):
            return f"class {target}: {obj.class_names[target]}"
        return f"class {target}"
    return f"{obj.name} · {'neuron' if obj.kind == 'neuron' else 'channel'} {target}"


def evaluate_objective(
    model: nn.Module,
    layer: str | nn.Module | None,
    channel: int | str | Sequence[int | str],
    images: Tensor,
    *,
    objective: Objective = "channel",
    normalize: Callable[[Tensor], Tensor] | None = None,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """The objective of :func:`feature_visualization` on given images (no optimisation).

    Parameters
    ----------
    images
        ``(N, C, H, W)`` images in [0, 1] (``normalize`` is applied) or, with
        ``normalize=None``, model inputs.
    channel
        One index for all images, or one per image.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` objective values.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 1))
    >>> evaluate_objective(net, "0", 1, torch.zeros(4, 3, 8, 8)).shape
    (4,)
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected a tensor (N, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    obj = _Objective(model, layer, objective, class_names)
    targets_in = _as_targets(channel)
    if len(targets_in) not in (1, len(images)):
        raise ValueError(f"channel: expected one index or one per image ({len(images)}), got {len(targets_in)}")
    norm = normalize if normalize is not None else (lambda x: x)
    with preserved_model(model) as session, torch.no_grad():
        if obj.module is not None:
            session.forward_hook(obj.module, obj.hook(stop=True))
        acts = obj.run(norm(images.to(model_device(model))), stop=True)
        targets = obj.check(acts, targets_in)
        index = torch.tensor(targets * (len(images) if len(targets) == 1 else 1), device=acts.device)
        return obj.values(acts, index).float().cpu().numpy()


# --- images for display --------------------------------------------------------------------------


def display_image(image: Any, name: str = "image") -> np.ndarray:
    """An image as ``(H, W, 3)`` float32 in [0, 1] for drawing.

    Accepts ``uint8`` ``(H, W, 3)``/``(H, W)`` photos (divided by 255), float
    arrays in [0, 1] ``(H, W, 3)``, and model-input tensors ``(C, H, W)`` or
    ``(1, C, H, W)`` (C = 1 or 3), which are min-max scaled since their
    normalisation is unknown.

    Example
    -------
    >>> display_image(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 3)
    >>> float(display_image(torch.tensor([[[-1.0, 1.0]]])).max())
    1.0
    """
    if isinstance(image, Tensor):
        t = image.detach().to("cpu", torch.float32)
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"{name}: expected a tensor (C, H, W) or (1, C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
        lo, hi = float(t.min()), float(t.max())
        t = (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)
        arr = t.permute(1, 2, 0).numpy()
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype.kind == "f":
            if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
                raise ValueError(f"{name}: expected float values in [0, 1] (or uint8 0..255), got range [{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
            arr = arr.astype(np.float32)
        else:
            raise TypeError(f"{name}: expected a uint8 or float image, got dtype {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{name}: expected an (H, W, 3) or (H, W) image, got shape {arr.shape}")
        arr = arr[..., :3]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def crop_resize(image: np.ndarray, box: Sequence[float], input_size: tuple[int, int], size: int) -> np.ndarray:
    """Crops ``box`` (top, left, bottom, right in model-input pixels) from a display image, resized to ``size``².

    The display image may have any size: the box is mapped by the fractions of
    ``input_size`` it covers.

    Example
    -------
    >>> crop_resize(np.ones((20, 20, 3), np.float32), (0, 0, 5, 5), (10, 10), 8).shape
    (8, 8, 3)
    """
    h, w = image.shape[:2]
    ih, iw = input_size
    top, left, bottom, right = box
    y0, x0 = math.floor(top / ih * h), math.floor(left / iw * w)
    y1, x1 = max(y0 + 1, math.ceil(bottom / ih * h)), max(x0 + 1, math.ceil(right / iw * w))
    crop = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=crop.shape[-1] > size)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()
