"""Attributions for image (and other dense-input) models, with Captum as the engine.

One verb, :func:`attribute`, runs any method of :func:`available_methods` (or
any ``captum.attr.Attribution`` the user already built) and returns an
:class:`Attribution`. What it adds to Captum: method names with good defaults,
``target`` as the predicted class or a function of any output type, the
automatic target layer for CAM methods (ViT token grids included), the
original CAM, internal batch sizes chosen from a memory budget, a progress
bar, and the guarantee that the model comes back unchanged.

Models run in eval mode during the call (dropout off, batch-norm statistics
frozen) and get their own train/eval mode back afterwards.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import captum.attr as ca
import numpy as np
import torch
from torch import Tensor, nn

from ._batching import (
    Progress,
    default_budget,
    measure_footprint,
    memory_in_use,
    parse_budget,
    plan_examples_per_pass,
)
from ._forward import (
    ForwardWrapper,
    TargetType,
    check_inputs,
    check_target_range,
    model_device,
    predict_scores,
    predicted_target,
    resolve_target,
    top_predictions,
)
from ._hooks import ModelSession, preserved_model
from ._layers import (
    LayerChoice,
    cached_layer_choice,
    describe_layer,
    find_cam_layer,
    find_gap_classifier,
    install_token_grid,
    resolve_layer,
)
from ._methods import (
    METHODS,
    MethodInfo,
    available_methods,
    build,
    fill_defaults,
    n_evaluations,
    split_options,
)

__all__ = [
    "Attribution",
    "MethodInfo",
    "attribute",
    "available_methods",
    "expected_saliency",
    "guard_model",
    "top_predictions",
]

# Captum's notices that our wrapper makes moot (we restore everything ourselves).
_QUIET = (
    "Input Tensor .* did not already require gradients",
    "Setting backward hooks on ReLU",
    "Setting forward, backward hooks and attributes",
    "You are providing multiple inputs for Lime",
)
_BATCH_OPTIONS = ("internal_batch_size", "nt_samples_batch_size", "perturbations_per_eval")
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


@dataclass
class Attribution:
    """The result of :func:`attribute`.

    Example
    -------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> result = attribute(net, torch.rand(2, 3, 2, 2), "saliency", target=0)
    >>> result.maps.shape, result.heatmap().shape
    (torch.Size([2, 3, 2, 2]), (2, 2, 2))
    """

    maps: Tensor
    """Attributions shaped like the inputs; CAM-family maps are (N, 1, H, W), upsampled to the input size."""
    method: str
    """Method name (or the Captum class name for a user's Captum object)."""
    target: list[int] | None
    """Class explained for each example (the predicted one when target=None); None for a callable target."""
    signed: bool
    """True when maps hold positive and negative evidence (use diverging colours)."""
    raw: Tensor | None = None
    """The layer map before upsampling (N, 1, h, w) for CAM-family methods, else None."""
    delta: Tensor | None = None
    """Convergence delta per example (integrated gradients, DeepLIFT), else None."""
    layer: str | None = None
    """Name of the layer used by CAM-family methods."""
    probabilities: Tensor | None = None
    """Softmax of the model's scores (N, classes) when the target was predicted, else None."""
    options: dict[str, Any] = field(default_factory=dict)
    """Options passed to Captum, including the batch sizes chosen from the memory budget."""

    def heatmap(self, reduce: str = "sum") -> np.ndarray:
        """One float32 map per example, channels reduced: (N, H, W) for image inputs.

        ``reduce`` is ``"sum"`` (keeps the sign), ``"abs_sum"`` or ``"max_abs"``.
        """
        maps = self.maps.detach().float()
        if maps.ndim == 4:
            if reduce == "sum":
                maps = maps.sum(1)
            elif reduce == "abs_sum":
                maps = maps.abs().sum(1)
            elif reduce == "max_abs":
                maps = maps.abs().amax(1)
            else:
                raise ValueError(f"reduce: expected 'sum', 'abs_sum' or 'max_abs', got {reduce!r}")
        return maps.cpu().numpy()


def guard_model(session: ModelSession, model: nn.Module) -> None:
    """Removes, at the end of ``session``, hooks and attributes that others (Captum) add to modules.

    Captum removes its hooks in ``finally`` blocks, but DeepLIFT stores
    ``module.input``/``module.output`` between the forward and the backward
    pass; an exception in between would leave them on the user's modules.
    """
    saved = []
    for module in model.modules():
        state = module.__dict__
        hooks = {name: tuple(state[name]) for name in _HOOK_DICTS if state.get(name)}
        saved.append((module, frozenset(state), hooks, state.get("_is_full_backward_hook")))

    def restore() -> None:
        for module, keys, hooks, full in saved:
            state = module.__dict__
            if len(state) != len(keys):
                for key in [k for k in state if k not in keys]:
                    del state[key]
            for name in _HOOK_DICTS:
                current = state.get(name)
                if current:
                    kept = hooks.get(name, ())
                    for hook_id in [k for k in current if k not in kept]:
                        del current[hook_id]
            if "_is_full_backward_hook" in state:
                state["_is_full_backward_hook"] = full

    session.on_exit(restore)


def _resolve_method(
    method: str | ca.Attribution,
) -> tuple[MethodInfo | None, ca.Attribution | None]:
    if isinstance(method, str):
        key = method.lower().replace("-", "_").replace(" ", "_")
        if key not in METHODS:
            raise ValueError(
                f"method: unknown method {method!r}; expected one of {', '.join(METHODS)}"
            )
        return METHODS[key], None
    if isinstance(method, ca.Attribution):
        return None, method
    raise TypeError(
        f"method: expected a method name or a captum.attr.Attribution, got {type(method).__name__}"
    )


def _check_baselines(baselines: Any, inputs: Tensor) -> Any:
    if baselines is None or isinstance(baselines, (int, float)):
        return baselines
    if isinstance(baselines, np.ndarray):
        baselines = torch.from_numpy(baselines)
    if not isinstance(baselines, Tensor):
        raise TypeError(
            f"baselines: expected None, a number or a tensor, got {type(baselines).__name__}"
        )
    baselines = baselines.detach().to(device=inputs.device, dtype=inputs.dtype)
    if baselines.shape == inputs.shape[1:]:
        baselines = baselines.unsqueeze(0)
    if baselines.shape[1:] != inputs.shape[1:] or baselines.shape[0] not in (1, inputs.shape[0]):
        raise ValueError(
            f"baselines: expected shape {tuple(inputs.shape)}, (1, *{tuple(inputs.shape[1:])}) or "
            f"{tuple(inputs.shape[1:])}, got {tuple(baselines.shape)}"
        )
    if not bool(torch.isfinite(baselines).all()):
        raise ValueError("baselines: contains NaN or infinite values")
    return baselines


def _take(value: Any, start: int, stop: int, n: int) -> Any:
    if isinstance(value, Tensor) and value.ndim and value.shape[0] == n and n > 1:
        return value[start:stop]
    return value


def _batch_option(info: MethodInfo | None, obj: ca.Attribution | None) -> str | None:
    if info is not None:
        return info.batch_option
    assert obj is not None  # _resolve_method gives a MethodInfo or a Captum object
    params = inspect.signature(type(obj).attribute).parameters
    return next((name for name in _BATCH_OPTIONS if name in params), None)


def _upsample(raw: Tensor, inputs: Tensor, mode: str) -> Tensor:
    return ca.LayerAttribution.interpolate(raw, tuple(inputs.shape[2:]), interpolate_mode=mode)


def attribute(
    model: nn.Module,
    inputs: Tensor,
    method: str | ca.Attribution = "integrated_gradients",
    *,
    target: TargetType = None,
    layer: str | nn.Module | None = None,
    baselines: float | Tensor | None = None,
    memory_budget: int | float | str | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Attribution:
    """Attributions of ``model``'s output to ``inputs`` by one method.

    Parameters
    ----------
    model
        A ``torch.nn.Module``. It runs in eval mode during the call and comes
        back unchanged (weights, train/eval mode, ``requires_grad``, ``.grad``,
        hooks), also after an exception or KeyboardInterrupt.
    inputs
        A float batch (N, ...), e.g. images (N, C, H, W); moved to the model's device.
    method
        A name from :func:`available_methods` (``"saliency"``, ``"gradcam"``, ...)
        or a ``captum.attr.Attribution`` built on ``model``.
    target
        What to explain: None (the predicted class), a class index, one index
        per example, or a callable mapping the model's output (tensor, dict,
        tuple, ``transformers`` output) to one score per example. Dict, tuple
        and ``.logits`` outputs also work with class indices.
    layer
        CAM-family methods: a submodule or its dotted name (``"layer4"``).
        None picks the last module with a spatial map (a ViT's token grid
        is reshaped to a square map).
    baselines
        Reference input for integrated gradients, DeepLIFT, occlusion, LIME
        and Kernel SHAP: a number or a tensor shaped like ``inputs`` or one
        example. Default 0.
    memory_budget
        Cap on the process's memory during the call, in bytes or as
        ``"2GB"``: resident set size on CPU, allocated CUDA memory on GPU.
        Internal batch sizes are chosen to stay under it. Default: what is in
        use now plus half of what is available.
    progress
        None: a progress bar appears if the call runs longer than 2 s. True:
        always. False: never.
    **options
        Options of the Captum method or its constructor (``n_steps``,
        ``nt_samples``, ``sliding_window_shapes``, ``n_samples``, ...); an
        explicit batch option (``internal_batch_size``...) overrides the
        memory planning. Unknown names are an error.

    Returns
    -------
    Attribution
        ``maps`` shaped like ``inputs`` (CAM family: (N, 1, H, W)) and metadata.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> images = torch.rand(2, 3, 8, 8)
    >>> result = attribute(net, images, "gradcam")
    >>> result.maps.shape, result.layer
    (torch.Size([2, 1, 8, 8]), '1')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    info, obj = _resolve_method(method)
    device = model_device(model)
    inputs = check_inputs(inputs, device=device)
    n = inputs.shape[0]
    name = info.name if info is not None else type(obj).__name__
    if info is not None and info.uses_layer and inputs.ndim != 4:
        raise ValueError(
            f"inputs: method {name!r} needs images of shape (N, C, H, W), got {tuple(inputs.shape)}"
        )
    if layer is not None and (info is None or not info.uses_layer):
        raise TypeError(f"layer: method {name!r} does not use a layer")
    budget = parse_budget(memory_budget)
    spec = resolve_target(target, n, device)
    if spec is not None and spec.function is not None and (obj is not None or name == "cam"):
        raise TypeError(f"target: method {name!r} needs class indices, not a callable")
    init, attr = split_options(info, obj, options)
    if (
        name in ("lime", "kernel_shap")
        and "interpretable_model" not in init
        and not importlib.util.find_spec("sklearn")
    ):
        raise ImportError(
            f"method {name!r} fits its surrogate with scikit-learn: pip install scikit-learn, or pass "
            "interpretable_model=captum._utils.models.linear_model.SGDLasso()"
        )
    attr = fill_defaults(info, attr, inputs) if info is not None else attr
    baselines = _check_baselines(baselines, inputs)
    captum_cls = type(obj) if obj is not None else info.captum if info is not None else None
    attribute_params = inspect.signature(captum_cls.attribute).parameters if captum_cls else {}
    if baselines is not None and "baselines" not in attribute_params:
        raise TypeError(f"baselines: method {name!r} takes no baselines")
    interpolate_mode = (
        attr.pop("interpolate_mode", "bilinear")
        if info is not None and info.granularity == "layer"
        else "bilinear"
    )

    with preserved_model(model) as session:
        guard_model(session, model)
        forward = ForwardWrapper(model, spec.function if spec is not None else None)
        forward.input_shape = tuple(inputs.shape)
        probabilities = None
        if spec is None:
            spec, probabilities = predicted_target(predict_scores(forward, inputs))
        forward.first_call_check = lambda scores: check_target_range(scores, spec)

        choice: LayerChoice | None = None
        captum_layer: nn.Module | None = None
        if info is not None and info.uses_layer:
            named = resolve_layer(model, layer) if layer is not None else None
            choice = cached_layer_choice(
                model,
                (tuple(inputs.shape[1:]), inputs.dtype, named[0] if named else None),
                lambda: (
                    find_cam_layer(model, forward, inputs)
                    if named is None
                    else describe_layer(model, forward, inputs, *named)
                ),
            )
            captum_layer = (
                install_token_grid(session, choice) if choice.token_grid else choice.module
            )

        chunk = _plan_batches(info, obj, attr, model, forward, inputs, budget)
        runner = (
            build(info, forward, captum_layer, init) if info is not None and info.captum else obj
        )
        bar = Progress(progress, total=n_evaluations(info, attr, inputs), desc=name)
        if obj is None:
            forward.on_batch = bar.update
        else:
            session.forward_pre_hook(model, lambda module, args: bar.update(_batch_size(args)))
        gradient = info.gradient if info is not None else isinstance(obj, ca.GradientAttribution)
        layer_map = (
            info.granularity == "layer"
            if info is not None
            else isinstance(obj, ca.LayerAttribution)
        )

        def run(part: Tensor, start: int, stop: int) -> Any:
            kwargs = dict(attr)
            if baselines is not None:
                kwargs["baselines"] = _take(baselines, start, stop, n)
            if "feature_mask" in kwargs:
                kwargs["feature_mask"] = _take(kwargs["feature_mask"], start, stop, n)
            if name == "cam":
                return _class_activation_map(
                    model, forward, captum_layer, choice, part, spec.take(start, stop)
                )
            assert runner is not None  # only "cam" (above) has no Captum runner
            return runner.attribute(part, target=spec.take(start, stop), **kwargs)

        maps, raws, deltas = [], [], []
        try:
            with warnings.catch_warnings():
                for pattern in _QUIET:
                    warnings.filterwarnings("ignore", message=pattern)
                for start in range(0, n, chunk):
                    stop = min(start + chunk, n)
                    part = inputs[start:stop]
                    out = run(part.detach().requires_grad_(True) if gradient else part, start, stop)
                    if (
                        isinstance(out, tuple)
                        and len(out) == 2
                        and attr.get("return_convergence_delta")
                    ):
                        out, delta = out
                        deltas.append(delta.detach().reshape(-1))
                    out = out.detach()
                    if layer_map and out.ndim == 4 and part.ndim == 4:
                        raws.append(out)
                        if out.shape[2:] != part.shape[2:]:
                            out = _upsample(out, part, interpolate_mode)
                    maps.append(out)
        finally:
            bar.close()

    result_maps = torch.cat(maps)
    signed = info.signed_with(attr) if info is not None else bool((result_maps < 0).any())
    if info is not None and info.granularity == "layer":
        attr["interpolate_mode"] = interpolate_mode
    return Attribution(
        maps=result_maps,
        method=name,
        target=spec.as_list(),
        signed=signed,
        raw=torch.cat(raws) if raws else None,
        delta=torch.cat(deltas) if deltas else None,
        layer=choice.name if choice is not None else None,
        probabilities=probabilities,
        options=attr,
    )


def _batch_size(args: tuple[Any, ...]) -> int:
    return int(args[0].shape[0]) if args and isinstance(args[0], Tensor) and args[0].ndim else 0


def _plan_batches(
    info: MethodInfo | None,
    obj: ca.Attribution | None,
    attr: dict[str, Any],
    model: nn.Module,
    forward: ForwardWrapper,
    inputs: Tensor,
    budget: int | None,
) -> int:
    """Sets the method's batch option in ``attr`` from the memory budget; returns examples per call."""
    n = inputs.shape[0]
    option = _batch_option(info, obj)
    if option is not None and option in attr:
        return n  # the user decided
    if option is None and n == 1 and budget is None:
        return 1  # one pass over one example: nothing to plan
    backward = info.gradient if info is not None else isinstance(obj, ca.GradientAttribution)
    per_example_factor = 2 if (info is not None and info.name == "deeplift") else 1
    footprint = measure_footprint(model, forward, inputs[:1])
    device = inputs.device
    per_pass = (
        plan_examples_per_pass(
            footprint,
            budget=budget if budget is not None else default_budget(device),
            in_use=memory_in_use(device),
            n_examples=n,
            backward=backward,
            device=device,
            budget_given=budget is not None,
            cap=option is not None,
        )
        // per_example_factor
    )
    per_pass = max(per_pass, 1)
    if option is None:
        return min(n, per_pass)
    method = info.name if info is not None else ""
    if option == "perturbations_per_eval" and method in ("lime", "kernel_shap"):
        # Captum's LIME and Kernel SHAP explain one example at a time.
        attr[option] = max(1, min(per_pass, attr.get("n_samples", 25)))
        return n
    chunk = min(n, per_pass)
    if option == "internal_batch_size":
        attr[option] = max(chunk, per_pass // chunk * chunk)
    elif option == "nt_samples_batch_size":
        attr[option] = max(1, min(per_pass // chunk, attr.get("nt_samples", 5)))
    else:
        attr[option] = max(1, per_pass // chunk)
    return chunk


def _class_activation_map(
    model: nn.Module,
    forward: ForwardWrapper,
    layer: nn.Module | None,
    choice: LayerChoice | None,
    inputs: Tensor,
    target: Tensor | None,
) -> Tensor:
    """Original CAM: class weights of the final linear layer applied to the layer's maps."""
    assert layer is not None and choice is not None
    if target is None:
        raise TypeError("target: method 'cam' needs class indices")
    classifier = find_gap_classifier(model, forward, inputs, layer, choice.name)
    with torch.no_grad():
        acts = ca.LayerActivation(forward, layer).attribute(inputs)
        weights = classifier.weight[target].to(acts.dtype)
        return torch.einsum("nc,nchw->nhw", weights, acts).unsqueeze(1)


def _batches(data: Iterable[Any]) -> Iterable[tuple[Tensor, Any]]:
    for batch in data:
        if isinstance(batch, Tensor):
            yield batch, None
        elif isinstance(batch, dict):
            x = batch.get("inputs", batch.get("input", batch.get("x")))
            if x is None:
                raise ValueError("data_loader: dict batches need an 'inputs', 'input' or 'x' key")
            yield x, batch.get("labels", batch.get("label", batch.get("y")))
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0], batch[1] if len(batch) > 1 else None
        else:
            raise TypeError(
                f"data_loader: expected batches of tensors or (inputs, labels), got {type(batch).__name__}"
            )


def expected_saliency(
    model: nn.Module,
    data_loader: Iterable[Any],
    *,
    target: int | str | Callable[[Any], Tensor] | None = None,
    max_batches: int | None = None,
    progress: bool | None = None,
) -> Tensor:
    """Mean absolute gradient of the target score over a dataset (global input importance).

    "Sensitivity based neural networks explanations" (Horel & Giesecke, 2018):
    features whose gradient is large on average matter to the model overall.

    Parameters
    ----------
    model
        A ``torch.nn.Module``; comes back unchanged.
    data_loader
        Iterable of batches: tensors, ``(inputs, labels)`` pairs or dicts with ``"inputs"``.
    target
        None (each example's predicted class), a class index, ``"label"``
        (the batch's labels) or a callable giving one score per example.
    max_batches
        Stop after this many batches.
    progress
        As in :func:`attribute`.

    Returns
    -------
    torch.Tensor
        Shaped like one example: mean over examples of ``|d score / d input|``.

    Example
    -------
    >>> net = nn.Linear(3, 2)
    >>> loader = [torch.randn(4, 3), torch.randn(4, 3)]
    >>> expected_saliency(net, loader, target=1).shape
    torch.Size([3])
    """
    if isinstance(target, str) and target != "label":
        raise ValueError(f"target: expected None, an int, 'label' or a callable, got {target!r}")
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches: expected a positive int, got {max_batches!r}")
    total: Tensor | None = None
    count = 0
    bar = Progress(progress, total=None, desc="expected saliency")
    try:
        for index, (x, labels) in enumerate(_batches(data_loader)):
            if max_batches is not None and index >= max_batches:
                break
            if target == "label":
                if labels is None:
                    raise ValueError("target: 'label' needs (inputs, labels) batches")
                batch_target: Any = labels
            else:
                batch_target = target
            result = attribute(model, x, "saliency", target=batch_target, progress=False, abs=True)
            batch_sum = result.maps.double().sum(0)
            total = batch_sum if total is None else total + batch_sum
            count += result.maps.shape[0]
            bar.update(result.maps.shape[0])
    finally:
        bar.close()
    if total is None:
        raise ValueError("data_loader: yielded no batches")
    return (total / count).float()
