"""Token attributions for models that take token ids.

Gradients cannot flow into integer ids, so gradient methods attribute to the
output of the embedding layer (found automatically: ``get_input_embeddings()``
for ``transformers`` models, else the ``nn.Embedding`` that reads the ids)
and sum over the embedding dimension, one score per token. Occlusion replaces
one token at a time by the baseline id.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import captum.attr as ca
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
    predicted_target,
    resolve_target,
)
from ._hooks import ModelSession, preserved_model
from ._layers import resolve_layer
from .attribution import _QUIET, guard_model

__all__ = ["TEXT_METHODS", "TokenAttribution", "attribute_text", "find_embedding"]

TEXT_METHODS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {
        "label": "Integrated Gradients",
        "signed": True,
        "reduce": "sum",
        "batch": "internal_batch_size",
        "captum": ca.LayerIntegratedGradients,
        "defaults": {"n_steps": 50, "method": "gausslegendre", "return_convergence_delta": True},
    },
    "input_x_gradient": {
        "label": "Input × Gradient",
        "signed": True,
        "reduce": "sum",
        "batch": None,
        "captum": ca.LayerGradientXActivation,
        "defaults": {},
    },
    "saliency": {
        "label": "Saliency (gradient norm)",
        "signed": False,
        "reduce": "norm",
        "batch": None,
        "captum": ca.LayerGradientXActivation,
        "defaults": {},
    },
    "occlusion": {
        "label": "Occlusion (token ablation)",
        "signed": True,
        "reduce": None,
        "batch": "perturbations_per_eval",
        "captum": ca.FeatureAblation,
        "defaults": {},
    },
}
"""Methods :func:`attribute_text` knows: display label, whether scores are signed, how dims are reduced."""


@dataclass
class TokenAttribution:
    """The result of :func:`attribute_text`: one score per token.

    Example
    -------
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.emb, self.out = nn.Embedding(10, 4), nn.Linear(4, 2)
    ...     def forward(self, ids):
    ...         return self.out(self.emb(ids).mean(1))
    >>> result = attribute_text(Net(), torch.tensor([[1, 2, 3]]), "input_x_gradient")
    >>> result.scores.shape, len(result.predicted)
    (torch.Size([1, 3]), 1)
    """

    scores: Tensor
    """(N, T) attribution per token (0 where ``attention_mask`` is 0)."""
    input_ids: Tensor
    """(N, T) the token ids explained."""
    method: str
    target: list[int] | None
    """Class explained per example; None for a callable target."""
    predicted: list[int] | None
    """Predicted class per example (None for a model with one output)."""
    probabilities: Tensor | None
    """(N, classes) softmax of the model's scores, or None for a model with one output."""
    total: Tensor
    """(N,) sum of the token scores (for integrated gradients about f(x) - f(baseline))."""
    signed: bool
    delta: Tensor | None = None
    """(N,) convergence delta of integrated gradients, else None."""
    attention_mask: Tensor | None = None
    layer: str | None = None
    """The embedding layer attributed to (gradient methods)."""
    options: dict[str, Any] = field(default_factory=dict)


def find_embedding(
    model: nn.Module, input_ids: Tensor, call: Any, layer: str | nn.Module | None = None
) -> tuple[str, nn.Module]:
    """The embedding module that reads ``input_ids``: named, ``get_input_embeddings()``, or traced."""
    if layer is not None:
        return resolve_layer(model, layer)
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            module = getter()
        except (NotImplementedError, AttributeError):
            module = None
        if isinstance(module, nn.Module):
            return resolve_layer(model, module)
    names = {id(m): name for name, m in model.named_modules()}
    found: list[nn.Module] = []
    session = ModelSession(model)

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        ids = args[0] if args else None
        if isinstance(ids, Tensor) and ids.shape == input_ids.shape and torch.equal(ids, input_ids):
            found.append(module)

    for module in model.modules():
        if isinstance(module, nn.Embedding):
            session.forward_pre_hook(module, hook)
    try:
        with torch.no_grad():
            call(input_ids)
    finally:
        session.close()
    if not found:
        embeddings = [name for name, m in model.named_modules() if isinstance(m, nn.Embedding)]
        raise ValueError(
            "embedding_layer: found no nn.Embedding that reads input_ids; pass embedding_layer='name' "
            f"(nn.Embedding modules: {embeddings or 'none'})"
        )
    return names[id(found[0])], found[0]


def _baseline_ids(model: nn.Module, input_ids: Tensor, baselines: Any) -> Tensor:
    if baselines is None:
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
        baselines = pad if isinstance(pad, int) else 0
    if isinstance(baselines, int) and not isinstance(baselines, bool):
        return torch.full_like(input_ids, baselines)
    if isinstance(baselines, Tensor) and not baselines.is_floating_point():
        baselines = baselines.to(input_ids.device).long()
        if baselines.shape == input_ids.shape[1:]:
            baselines = baselines.expand_as(input_ids)
        if baselines.shape != input_ids.shape:
            raise ValueError(
                f"baselines: expected token ids of shape {tuple(input_ids.shape)}, got {tuple(baselines.shape)}"
            )
        return baselines
    raise TypeError("baselines: expected None, a token id (int) or a tensor of token ids")


def attribute_text(
    model: nn.Module,
    input_ids: Tensor,
    method: str | ca.Attribution = "integrated_gradients",
    *,
    target: TargetType = None,
    attention_mask: Tensor | None = None,
    embedding_layer: str | nn.Module | None = None,
    baselines: int | Tensor | None = None,
    forward_kwargs: Mapping[str, Any] | None = None,
    memory_budget: int | float | str | None = None,
    progress: bool | None = None,
    **options: Any,
) -> TokenAttribution:
    """Per-token attributions for a classifier that reads token ids.

    Parameters
    ----------
    model
        A ``transformers`` sequence classifier, or any module called as
        ``model(input_ids, attention_mask=...)`` (``attention_mask`` only when
        given); comes back unchanged, as with :func:`attribute`.
    input_ids
        (N, T) integer token ids (pad shorter texts).
    method
        ``"integrated_gradients"``, ``"input_x_gradient"``, ``"saliency"``
        (L2 norm of the gradient per token), ``"occlusion"`` (each token
        replaced by the baseline id), or a Captum layer attribution built on
        ``model`` and its embedding layer.
    target
        As in :func:`attribute`: None (predicted class), int, one int per
        example, or a callable on the model output.
    attention_mask
        (N, T) mask passed to the model; masked tokens score 0.
    embedding_layer
        Module or dotted name; default ``get_input_embeddings()`` or the
        ``nn.Embedding`` that reads ``input_ids``.
    baselines
        Reference token id(s) for integrated gradients and occlusion: an int
        or an (N, T) tensor. Default: ``model.config.pad_token_id`` or 0. Pass
        a tensor to keep special tokens such as [CLS] in the reference.
    forward_kwargs
        More model keyword arguments; (N, T) tensors (``token_type_ids``) are
        batched with the ids, others passed as they are.
    memory_budget, progress
        As in :func:`attribute`.
    **options
        Options of the Captum method (``n_steps``...).

    Returns
    -------
    TokenAttribution
        ``scores`` (N, T), prediction with probabilities, ``total`` and ``delta``.

    Example
    -------
    >>> emb = nn.Embedding(20, 8)
    >>> net = nn.Sequential(emb, nn.Flatten(), nn.Linear(8 * 5, 3))
    >>> result = attribute_text(net, torch.randint(1, 20, (2, 5)), target=0, n_steps=20)
    >>> result.scores.shape, result.layer
    (torch.Size([2, 5]), '0')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    device = model_device(model)
    input_ids = check_inputs(input_ids, name="input_ids", floating=False, device=device)
    n, t = input_ids.shape[:2]
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids: expected shape (N, T), got {tuple(input_ids.shape)}")
    if isinstance(method, str):
        if method not in TEXT_METHODS:
            raise ValueError(
                f"method: unknown text method {method!r}; expected one of {', '.join(TEXT_METHODS)}"
            )
        spec_info = TEXT_METHODS[method]
        name = method
    elif isinstance(method, ca.Attribution):
        spec_info, name = (
            {"signed": True, "reduce": "sum", "batch": None, "defaults": {}},
            type(method).__name__,
        )
    else:
        raise TypeError(
            f"method: expected a text method name or a captum.attr.Attribution, got {type(method).__name__}"
        )
    extra_names, extra_values, static = ["attention_mask"], [], dict(forward_kwargs or {})
    if attention_mask is not None:
        attention_mask = check_inputs(
            attention_mask, name="attention_mask", floating=False, device=device
        )
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask: expected shape {tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}"
            )
        extra_values.append(attention_mask)
    else:
        extra_names = []
    for key in [k for k, v in static.items() if isinstance(v, Tensor) and v.shape[:2] == (n, t)]:
        extra_names.append(key)
        extra_values.append(static.pop(key).to(device))
    budget = parse_budget(memory_budget)
    spec = resolve_target(target, n, device)
    _check_options(name, spec_info.get("captum") or type(method), options)
    attr = {**spec_info["defaults"], **options}
    reference = _baseline_ids(model, input_ids, baselines)

    with preserved_model(model) as session:
        guard_model(session, model)
        forward = _TextForward(
            model, spec.function if spec is not None else None, static, extra_names
        )
        forward.input_shape = tuple(input_ids.shape)

        def call(ids: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
            return forward(
                ids,
                *[
                    v[start : (stop if stop is not None else start + ids.shape[0])]
                    for v in extra_values
                ],
            )

        scores_all = _predict(call, input_ids)
        probabilities = predicted = None
        if scores_all.ndim == 2 and scores_all.shape[1] > 1:
            probabilities = torch.softmax(scores_all.float(), dim=1)
            predicted = probabilities.argmax(1).tolist()
        if spec is None:
            spec, _ = predicted_target(scores_all)
        check_target_range(scores_all, spec)

        layer_name, layer = (None, None)
        if name != "occlusion":
            layer_name, layer = find_embedding(
                model, input_ids[:1], lambda ids: call(ids, 0, 1), embedding_layer
            )
        runner = _build(name, method, forward, layer)
        chunk = _plan(spec_info["batch"], attr, model, call, input_ids, layer, budget, name)
        bar = Progress(progress, total=_evaluations(name, attr, n, t), desc=name)
        forward.on_batch = bar.update
        parts, deltas = [], []
        try:
            with warnings.catch_warnings():
                for pattern in _QUIET:
                    warnings.filterwarnings("ignore", message=pattern)
                for start in range(0, n, chunk):
                    stop = min(start + chunk, n)
                    kwargs = dict(attr)
                    if name in ("integrated_gradients", "occlusion") or "baselines" in _params(
                        runner
                    ):
                        kwargs["baselines"] = reference[start:stop]
                    if name == "occlusion":
                        kwargs["feature_mask"] = torch.arange(t, device=device).expand(
                            stop - start, t
                        )
                    extra = tuple(v[start:stop] for v in extra_values)
                    out = runner.attribute(
                        input_ids[start:stop],
                        target=spec.take(start, stop),
                        additional_forward_args=extra or None,
                        **kwargs,
                    )
                    if (
                        isinstance(out, tuple)
                        and len(out) == 2
                        and kwargs.get("return_convergence_delta")
                    ):
                        out, delta = out
                        deltas.append(delta.detach().reshape(-1).float())
                    parts.append(out.detach())
        finally:
            bar.close()

    raw = torch.cat(parts)
    if raw.ndim == 3:
        scores = raw.norm(dim=-1) if spec_info["reduce"] == "norm" else raw.sum(-1)
    else:
        scores = raw
    scores = scores.float()
    if attention_mask is not None:
        scores = scores * (attention_mask != 0)
    return TokenAttribution(
        scores=scores,
        input_ids=input_ids,
        method=name,
        target=spec.as_list(),
        predicted=predicted,
        probabilities=probabilities,
        total=scores.sum(1),
        signed=bool(spec_info["signed"]),
        delta=torch.cat(deltas) if deltas else None,
        attention_mask=attention_mask,
        layer=layer_name,
        options=attr,
    )


class _TextForward(ForwardWrapper):
    """Passes batched extras (attention mask, token types) to the model by keyword."""

    def __init__(
        self, model: nn.Module, target_fn: Any, static: dict[str, Any], names: list[str]
    ) -> None:
        super().__init__(model, target_fn, static)
        self.names = list(names)

    def forward(self, *args: Any) -> Tensor:
        ids, extras = args[0], args[1:]
        self.forward_kwargs.update(zip(self.names, extras, strict=True))
        return super().forward(ids)


_OWN = {
    "self",
    "inputs",
    "target",
    "additional_forward_args",
    "baselines",
    "feature_mask",
    "layer_baselines",
}


def _check_options(name: str, cls: type[Any], options: Mapping[str, Any]) -> None:
    accepted = sorted(set(inspect.signature(cls.attribute).parameters) - _OWN)
    for key in options:
        if key not in accepted:
            raise TypeError(
                f"{key}: not an option of text method {name!r}; accepted: {', '.join(accepted)}"
            )


def _predict(call: Any, input_ids: Tensor, chunk: int = 64) -> Tensor:
    outs = []
    with torch.no_grad():
        for start in range(0, input_ids.shape[0], chunk):
            outs.append(call(input_ids[start : start + chunk], start).detach())
    return torch.cat(outs)


def _params(obj: Any) -> set[str]:
    return set(inspect.signature(type(obj).attribute).parameters)


def _build(name: str, method: Any, forward: nn.Module, layer: nn.Module | None) -> Any:
    if not isinstance(method, str):
        return method
    if name == "integrated_gradients":
        return ca.LayerIntegratedGradients(forward, layer)
    if name == "input_x_gradient":
        return ca.LayerGradientXActivation(forward, layer)
    if name == "saliency":
        return ca.LayerGradientXActivation(forward, layer, multiply_by_inputs=False)
    return ca.FeatureAblation(forward)


def _evaluations(name: str, attr: Mapping[str, Any], n: int, t: int) -> int:
    if name == "integrated_gradients":
        return n * (attr.get("n_steps", 50) + 2)
    if name == "occlusion":
        return n * (t + 1)
    return n


def _plan(
    option: str | None,
    attr: dict[str, Any],
    model: nn.Module,
    call: Any,
    input_ids: Tensor,
    layer: nn.Module | None,
    budget: int | None,
    name: str,
) -> int:
    n = input_ids.shape[0]
    if option is not None and option in attr:
        return n
    if option is None and n == 1 and budget is None:
        return 1
    footprint = _text_footprint(model, call, input_ids[:1], layer)
    device = input_ids.device
    per_pass = plan_examples_per_pass(
        footprint,
        budget=budget if budget is not None else default_budget(device),
        in_use=memory_in_use(device),
        n_examples=n,
        backward=name != "occlusion",
        device=device,
        budget_given=budget is not None,
        cap=option is not None,
    )
    chunk = min(n, per_pass)
    if option == "internal_batch_size":
        attr[option] = max(chunk, per_pass // chunk * chunk)
    elif option == "perturbations_per_eval":
        attr[option] = max(1, per_pass // chunk)
    return chunk


def _text_footprint(model: nn.Module, call: Any, example: Tensor, layer: nn.Module | None) -> Any:
    # Ids carry no gradient: make the embedding output require it so that the
    # probe records what a backward pass would keep, even for frozen weights.
    session = ModelSession(model)
    if layer is not None:
        session.forward_hook(
            layer,
            lambda m, a, out: out.detach().requires_grad_(True) if isinstance(out, Tensor) else out,
        )
    try:
        return measure_footprint(model, lambda ids: call(ids, 0, 1), example, key="text")
    finally:
        session.close()
