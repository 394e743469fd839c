"""preserved_model gives the model back unchanged, also after an exception."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepvis_widgets.compute._hooks import preserved_model


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.ReLU(), nn.Linear(4, 2))
    net[0].weight.requires_grad_(False)
    net(torch.randn(2, 3)).sum().backward()
    return net.train()


def _snapshot(net: nn.Module) -> dict:
    return {
        "modes": [m.training for m in net.modules()],
        "flags": [p.requires_grad for p in net.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in net.parameters()],
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in net.modules()),
        "attr": net[1].p,
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a["modes"] == b["modes"] and a["flags"] == b["flags"] and a["hooks"] == b["hooks"] and a["attr"] == b["attr"]
    for ga, gb in zip(a["grads"], b["grads"]):
        assert (ga is None) == (gb is None) and (ga is None or torch.equal(ga, gb))
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k])


def test_restores_everything_after_an_exception_half_way() -> None:
    net = _net()
    before = _snapshot(net)
    with pytest.raises(RuntimeError, match="boom"), preserved_model(net, check_weights=True) as s:
        assert not net.training
        s.forward_hook(net[0], lambda m, i, o: None)
        s.forward_pre_hook(net[3], lambda m, i: None)
        s.set_attr(net[1], "p", 0.0)
        for p in net.parameters():
            p.requires_grad_(True)
            p.grad = None
        net(torch.randn(1, 3)).sum().backward()
        with torch.no_grad():
            net[3].weight.add_(1.0)
        raise RuntimeError("boom")
    _assert_same(before, _snapshot(net))


def test_restores_after_keyboard_interrupt() -> None:
    net = _net()
    before = _snapshot(net)
    with pytest.raises(KeyboardInterrupt), preserved_model(net) as s:
        s.forward_hook(net[0], lambda m, i, o: None)
        raise KeyboardInterrupt
    _assert_same(before, _snapshot(net))


def test_rejects_non_modules() -> None:
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got str"), preserved_model("net"):  # type: ignore[arg-type]
        pass
