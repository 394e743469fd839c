"""Temporary changes to a user's model, always undone.

Every compute entry point that touches a model does it inside
:func:`preserved_model`, so the model comes back with the same train/eval
mode, ``requires_grad`` flags, ``.grad`` tensors and no hooks of ours, also
after an exception or a KeyboardInterrupt half-way (compare Captum's
``tests/attr/test_hook_removal.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["ModelSession", "preserved_model"]


class ModelSession:
    """Registers hooks and temporary settings on a model; :func:`preserved_model` undoes them."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._handles: list[RemovableHandle] = []
        self._undo: list[Callable[[], None]] = []

    def forward_hook(self, module: nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        self._handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))

    def forward_pre_hook(self, module: nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))

    def full_backward_hook(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        self._handles.append(module.register_full_backward_hook(fn))

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        """Sets ``obj.name = value`` until the session ends (e.g. an attention implementation)."""
        old = getattr(obj, name)
        setattr(obj, name, value)
        self._undo.append(lambda: setattr(obj, name, old))

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` when the session ends, in reverse order of registration."""
        self._undo.append(fn)

    def close(self) -> None:
        errors: list[BaseException] = []
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for fn in reversed(self._undo):
            try:
                fn()
            except Exception as exc:  # keep undoing the rest
                errors.append(exc)
        self._undo.clear()
        if errors:
            raise errors[0]


@contextlib.contextmanager
def preserved_model(model: nn.Module, *, eval_mode: bool = True, check_weights: bool = False) -> Iterator[ModelSession]:
    """Context manager that lends ``model`` to a computation and gives it back unchanged.

    Parameters
    ----------
    model
        Any ``torch.nn.Module``.
    eval_mode
        Put the model in eval mode for the duration (dropout off, batch-norm
        running statistics frozen). Its own mode is restored afterwards.
    check_weights
        Also snapshot parameters and buffers and restore them on exit (costs a
        copy of the weights; for computations that modify them in place).

    Yields
    ------
    ModelSession
        Register hooks and temporary attributes through it; they are removed on exit.

    Example
    -------
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    >>> with preserved_model(net) as session:
    ...     session.forward_hook(net[0], lambda m, i, o: None)
    ...     _ = net(torch.zeros(1, 2))
    >>> net.training, len(net[0]._forward_hooks)
    (True, 0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if check_weights else None
    session = ModelSession(model)
    try:
        if eval_mode:
            model.eval()
        yield session
    finally:
        try:
            session.close()
        finally:
            for m, mode in modes:
                m.training = mode
            for p, flag, grad in zip(params, flags, grads, strict=True):
                p.requires_grad_(flag)
                p.grad = grad
            if saved_state is not None:
                with torch.no_grad():
                    model.load_state_dict(saved_state)
