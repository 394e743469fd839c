"""Training dynamics and projections: compute layer (logs, layer tracking, PCA, error surface)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deepvis_widgets.compute.dynamics import ExampleLog, ScalarLog, example_groups, track_layers
from deepvis_widgets.compute.projection import error_rate_surface, project, umap_available

# --- ScalarLog -------------------------------------------------------------------


def test_scalar_log_series_replace_nan_and_ragged_errors() -> None:
    log = ScalarLog()
    log.add(0, "train", loss=2.0, acc=torch.tensor(0.25))
    log.add(5, "train", loss=1.0)
    log.add(5, "train", loss=0.9)  # same step again replaces
    log.add(3, "val", loss=float("nan"))
    steps, values = log.series("train", "loss")
    assert steps.tolist() == [0, 5] and values.tolist() == [2.0, 0.9]
    assert log.series("train", "acc")[1].tolist() == [0.25]
    assert log.keys == [("train", "loss"), ("train", "acc"), ("val", "loss")]
    assert log.nan_count == {("val", "loss"): 1}
    with pytest.raises(ValueError, match=r"step: expected 5 or later \(the last step logged for train/loss\), got 4"):
        log.add(4, "train", loss=1.0)
    log.add(4, "train", other=1.0)  # a different series has its own clock
    with pytest.raises(TypeError, match="step: expected an int, got float"):
        log.add(1.5, loss=1.0)
    with pytest.raises(ValueError, match="expected at least one scalar"):
        log.add(9)
    with pytest.raises(TypeError, match="loss: expected a number, got str"):
        log.add(9, loss="low")
    with pytest.raises(ValueError, match=r"loss: expected a single number, got a tensor of shape \(3,\)"):
        log.add(9, loss=torch.ones(3))
    with pytest.raises(KeyError, match="no series val/acc"):
        log.series("val", "acc")


# --- ExampleLog ------------------------------------------------------------------


def test_example_log_full_passes_give_uniform_columns() -> None:
    log = ExampleLog()
    for epoch in range(3):
        log.add(10 * epoch, np.arange(4), np.array([4.0, 3.0, 2.0, 1.0]) / (epoch + 1), preds=[0, 1, 2, epoch])
    assert log.losses().shape == (4, 3)
    assert log.uniform_steps().tolist() == [0, 10, 20]
    np.testing.assert_allclose(log.final_loss(), [4 / 3, 1.0, 2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(log.loss_at(5), [2.0, 1.5, 1.0, 0.5])
    np.testing.assert_allclose(log.loss_at(), [4.0, 3.0, 2.0, 1.0])
    assert log.final_pred().tolist() == [0, 1, 2, 2]


def test_example_log_minibatches_are_ragged_and_keep_their_steps() -> None:
    log = ExampleLog()
    log.add(0, torch.tensor([5, 9]), torch.tensor([1.0, 2.0]))
    log.add(1, [7], [3.0])
    log.add(2, [9, 5], [0.5, float("nan")])
    assert log.ids.tolist() == [5, 9, 7] and log.counts.tolist() == [2, 2, 1]
    assert log.uniform_steps() is None
    steps = log.steps()
    assert steps.tolist() == [[0, 2], [0, 2], [1, -1]]
    loss = log.losses()
    assert np.isnan(loss[0, 1]) and loss[1].tolist() == [2.0, 0.5] and np.isnan(loss[2, 1])
    assert log.nan_count == 1
    assert log.row_of(7) == 2
    with pytest.raises(KeyError, match="example id 8 was never logged"):
        log.row_of(8)
    with pytest.raises(ValueError, match=r"step: expected 2 or later for example 9 \(its last logged step\), got 1"):
        log.add(1, [9], [1.0])
    log.add(2, [9], [0.25])  # the same step again replaces
    assert log.losses()[1].tolist() == [2.0, 0.25] and log.counts.tolist() == [2, 2, 1]


def test_example_log_grows_past_its_capacity() -> None:
    log = ExampleLog()
    rng = np.random.default_rng(0)
    for step in range(40):
        ids = rng.choice(300, size=50, replace=False)
        log.add(step, ids, np.full(50, float(step)))
    assert len(log) == 300 and log.n_columns == log.counts.max()
    assert log.losses().shape == (300, log.n_columns)
    # Every stored loss equals the step it was logged at.
    finite = np.isfinite(log.losses())
    np.testing.assert_array_equal(log.losses()[finite], log.steps()[finite])


def test_example_log_fixed_ids_and_bad_input() -> None:
    log = ExampleLog(ids=[0, 1, 2])
    with pytest.raises(ValueError, match=r"ids: 2 id\(s\) were not declared when the monitor was created, e.g. \[7, 9\]"):
        log.add(0, [1, 7, 9], [1.0, 1.0, 1.0])
    assert log.counts.tolist() == [0, 0, 0], "a refused call stores nothing"
    with pytest.raises(ValueError, match=r"each example id may appear once per call; repeated: \[1\]"):
        log.add(0, [1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="losses: expected 2 values"):
        log.add(0, [0, 1], [1.0])
    with pytest.raises(TypeError, match="ids: expected integer example ids, got dtype float64"):
        log.add(0, [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"losses: expected a 1-D sequence"):
        log.add(0, [0, 1], np.ones((2, 2)))
    with pytest.raises(ValueError, match="exceed max_examples=2"):
        ExampleLog(max_examples=2).add(0, [0, 1, 2], [1.0, 1.0, 1.0])


def test_example_groups() -> None:
    g = example_groups([0.1, 2, 2, 0.1, np.nan], [0.1, 0.1, 2, 2, 0.1], threshold=0.5)
    assert g.tolist() == ["early", "late", "never", "forgotten", "unknown"]
    with pytest.raises(ValueError, match="final: expected 2 losses like early, got 1"):
        example_groups([1, 2], [1], 0.5)


# --- track_layers ------------------------------------------------------------------


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def test_track_layers_records_the_right_numbers_and_removes_its_hooks() -> None:
    net = _net()
    x = torch.randn(32, 4)
    y = torch.randint(0, 3, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    expected_grad = []
    with track_layers(net, every=3) as tracker:
        assert tracker.layers == ["0", "1", "3"], "dropout is skipped"
        for step in range(7):
            opt.zero_grad()
            h = net[1](net[0](x))
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            if step % 3 == 0:
                expected_grad.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in net[0].parameters())))
                expected_dead = float((h.detach().amax(0) <= 0).float().mean())
                expected_mean = float(h.detach().mean())
            opt.step()
            with torch.no_grad():
                net.eval()
                net(x)  # evaluation passes are not steps
                net.train()
    stats = tracker.stats
    assert stats.steps.tolist() == [0, 3, 6] and tracker.step == 7
    np.testing.assert_allclose(stats.metrics["grad_norm"][0], expected_grad, rtol=1e-5)
    assert np.isnan(stats.metrics["grad_norm"][1]).all(), "ReLU has no parameters"
    # Step 6's activations of the ReLU (dropout follows it, in train mode).
    assert stats.metrics["dead_fraction"][1, -1] == pytest.approx(expected_dead)
    assert stats.metrics["act_mean"][1, -1] == pytest.approx(expected_mean, rel=1e-5)
    # Gone: hooks on every module and on every parameter; nothing else changed but the training.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert all(not p._backward_hooks for p in net.parameters())
    assert net.training
    assert any(not torch.equal(state_before[k], v) for k, v in net.state_dict().items()), "training ran"
    grads_after = [p.grad.clone() for p in net.parameters()]
    tracker.remove()  # idempotent
    assert all(torch.equal(a, p.grad) for a, p in zip(grads_after, net.parameters()))


def test_track_layers_sees_a_dead_layer_and_a_frozen_one() -> None:
    net = _net()
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # every ReLU unit dead
    net[3].weight.requires_grad_(False)
    net[3].bias.requires_grad_(False)
    calls = []
    with track_layers(net, every=1, layers=["1", "3"], on_record=lambda s: calls.append(s.steps.tolist())) as tracker:
        for _ in range(3):
            out = net(torch.randn(8, 4)).sum() + net[0].weight.sum() * 0
            out.backward()
    stats = tracker.stats
    assert stats.layers == ["1", "3"]
    np.testing.assert_array_equal(stats.metrics["dead_fraction"][0], 1.0)
    assert np.isnan(stats.metrics["grad_norm"][1]).all(), "a frozen layer has no gradient"
    assert calls == [[0], [0, 1], [0, 1, 2]]


def test_track_layers_conv_channels_gru_tuples_and_errors() -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with torch.no_grad():
        conv[0].weight.abs_()  # positive inputs and weights: every channel fires...
        conv[0].bias[:2] = -50.0  # ...except these two
    with track_layers(conv, every=1) as tr:
        conv(torch.rand(2, 1, 6, 6)).sum().backward()
    assert tr.stats.metrics["dead_fraction"][1, 0] == pytest.approx(0.5)
    gru = nn.GRU(3, 5, batch_first=True)
    with track_layers(gru, every=1) as tr:
        out, _ = gru(torch.randn(2, 4, 3))
        out.sum().backward()
    assert tr.layers == [""] and tr.stats.metrics["grad_norm"][0, 0] > 0
    with pytest.raises(ValueError, match=r"every: expected a positive int"):
        track_layers(conv, every=0)
    with pytest.raises(ValueError, match=r"layers: \['9'\] are not modules of the model"):
        track_layers(conv, layers=["9"])
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        track_layers("model")
    assert not conv[0]._forward_hooks


# --- projections ---------------------------------------------------------------------


def test_pca_matches_sklearn_up_to_sign_and_is_deterministic() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * [5, 3, 1, 1, 0.5, 0.1]
    p = project(x)
    ref = PCA(2).fit(x)
    expected = ref.transform(x)
    for k in range(2):
        assert abs(np.corrcoef(p.coords[:, k], expected[:, k])[0, 1]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(p.explained, ref.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_array_equal(project(x).coords, p.coords)
    assert p.axis_labels[0].startswith("PC1 (")
    with pytest.raises(ValueError, match="features: 1 example"):
        project(np.vstack([x[:5], [np.nan] * 6]))
    with pytest.raises(ValueError, match="method: expected 'pca', 'umap' or 'tsne'"):
        project(x, method="isomap")


def test_umap_falls_back_to_pca_with_a_clear_message(monkeypatch) -> None:
    import deepvis_widgets.compute.projection as projection

    monkeypatch.setattr(projection, "umap_available", lambda: False)  # as on a machine without umap-learn
    x = np.random.default_rng(1).normal(size=(50, 4))
    with pytest.warns(UserWarning, match=r"UMAP is not installed \(pip install umap-learn\): showing PCA instead"):
        p = project(x, method="umap")
    assert p.method == "pca" and "umap-learn" in p.note


@pytest.mark.slow
def test_umap_keeps_neighbourhoods_better_than_pca_and_is_seeded() -> None:
    # umap-learn is in the examples extra; the first call compiles numba code (~30-90 s here).
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness

    assert umap_available()
    x = load_digits().data[:600]
    u = project(x, method="umap", seed=0)
    pca = project(x, method="pca")
    assert u.method == "umap" and u.coords.shape == (600, 2) and u.note == ""
    t_umap = trustworthiness(x, u.coords, n_neighbors=10)
    t_pca = trustworthiness(x, pca.coords, n_neighbors=10)
    assert t_umap > 0.95 and t_umap > t_pca + 0.1, (t_umap, t_pca)
    again = project(x, method="umap", seed=0)
    np.testing.assert_allclose(again.coords, u.coords, atol=1e-4)


def test_error_surface_is_high_where_errors_are() -> None:
    rng = np.random.default_rng(2)
    good = rng.normal(size=(300, 2))
    bad = rng.normal(size=(300, 2)) + np.array([6.0, 0.0])
    xy = np.vstack([good, bad])
    err = np.r_[rng.random(300) < 0.05, rng.random(300) < 0.9]
    s = error_rate_surface(xy, err, grid=32)
    xs = np.linspace(*s.x_range, 33)[:-1] + (s.x_range[1] - s.x_range[0]) / 64
    row = 16  # y near 0
    near_good = s.rate[row, np.argmin(abs(xs - 0))]
    near_bad = s.rate[row, np.argmin(abs(xs - 6))]
    assert near_good < 0.2 and near_bad > 0.7
    assert np.isnan(s.rate).any(), "empty corners are left unpainted"
    with pytest.raises(ValueError, match=r"errors: expected 600 values \(one per point\), got 3"):
        error_rate_surface(xy, [0, 1, 0])
    with pytest.raises(ValueError, match=r"errors: expected values in \[0, 1\]"):
        error_rate_surface(xy, np.full(600, 2.0))


# --- ProjectionView (widget) ------------------------------------------------------------


def test_projection_view_state_is_binary_and_the_figure_a_json_string() -> None:
    import json

    import traitlets

    from deepvis_widgets._arrays import decode_array
    from deepvis_widgets.widgets.bokeh_loader import BokehLoader
    from deepvis_widgets.widgets.projection import ProjectionView

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8))
    v = ProjectionView(x, labels=["b", "a"] * 60, examples=rng.random((120, 8, 8)), errors=np.arange(120) % 5 == 0)
    state = v.get_state()
    assert isinstance(state["_points"]["buffer"], memoryview)
    np.testing.assert_allclose(decode_array(state["_points"]), project(x).coords, rtol=1e-6)
    assert v.label_names == ["a", "b"] and decode_array(v._labels).tolist()[:2] == [1, 0]
    assert v._examples["kind"] == "image" and v._examples["images"]["shape"] == [120, 8, 8, 1]
    item = json.loads(v._item)
    assert item["doc"]["roots"][0]["type"] == "object", "a Bokeh document"
    assert "dv_points" in v._item and "dv_surface" in v._item
    assert v.color_by == "label" and v._bokeh is BokehLoader.shared()
    assert state["_bokeh"] == "IPY_MODEL_" + BokehLoader.shared().model_id, "a widget reference, not 1.5 MB of JS"
    v.selected = [3, 5]
    with pytest.raises(traitlets.TraitError, match=r"selected: expected point indices in 0..119, got \[120\]"):
        v.selected = [1, 120]
    w = ProjectionView(x, examples=[f"<b>{i}</b>" for i in range(120)])
    assert w.color_by == "none" and w._examples == {"kind": "text", "texts": [f"<b>{i}</b>" for i in range(120)]}
    assert "dv_surface" not in w._item


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"labels": [0, 1]}, ValueError, r"labels: expected 30 labels \(one per point\), got 2"),
        ({"examples": np.zeros((29, 4, 4))}, ValueError, r"examples: expected 30 examples \(one per point\), got 29"),
        ({"examples": np.zeros((30, 5))}, ValueError, "examples: flat examples must have a square number of pixels"),
        ({"examples": "abc"}, TypeError, "examples: expected 30 examples"),
        ({"errors": np.full(30, 3.0)}, ValueError, r"errors: expected booleans or values in \[0, 1\]"),
        ({"labels": [-1] * 30}, ValueError, "labels: integer labels must be class indices >= 0"),
        ({"labels": [0, 5] * 15, "class_names": ["a", "b"]}, ValueError, "class_names: expected at least 6 names"),
        ({"class_names": ["a"]}, TypeError, "class_names: given without labels"),
        ({"method": "mds"}, ValueError, "method: expected 'pca', 'umap' or 'tsne'"),
        ({"colour": "red"}, TypeError, "unexpected keyword argument.*colour"),
    ],
)
def test_projection_view_bad_input_names_the_argument(kwargs: dict, exc: type, match: str) -> None:
    from deepvis_widgets.widgets.projection import ProjectionView

    with pytest.raises(exc, match=match):
        ProjectionView(np.random.default_rng(0).normal(size=(30, 4)), **kwargs)


def test_projection_view_from_model_and_from_coords() -> None:
    from deepvis_widgets.widgets.projection import ProjectionView

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).train()
    x = torch.randn(40, 4)
    y = torch.randint(0, 3, (40,))
    v = ProjectionView.from_model(net, x, "1", labels=y)
    from deepvis_widgets._arrays import decode_array

    with torch.no_grad():
        wrong = (net.eval()(x).argmax(1) != y).numpy()
    np.testing.assert_array_equal(decode_array(v._errors), wrong.astype(np.float32))
    assert v.title.startswith("1: PCA of 8 features")
    c = ProjectionView.from_coords(np.random.rand(10, 2), axis_labels=("a", "b"))
    assert c.method == "given" and '"a"' in c._item
    with pytest.raises(ValueError, match=r"coords: expected shape \(n, 2\)"):
        ProjectionView.from_coords(np.zeros((4, 3)))


# --- TrainingMonitor (widget) --------------------------------------------------------------


def _monitor(**kwargs):
    from deepvis_widgets.widgets.training import TrainingMonitor

    return TrainingMonitor(**kwargs)


def test_monitor_sends_binary_payloads_and_figures_as_data_arrives() -> None:
    import json

    from deepvis_widgets._arrays import decode_array

    mon = _monitor(max_updates_per_second=1000)
    assert mon._ex == {} and mon._curves_item == "" and mon._scatter_item == ""
    mon.log(0, loss=2.0)
    mon.log(0, split="val", loss=2.2, acc=0.1)
    mon.log(10, loss=1.0)
    mon.log_examples(0, [7, 3], [2.0, 1.0], preds=[1, 0])
    mon.log_examples(10, [7, 3], [0.5, float("nan")], preds=[1, 1])
    mon.flush()
    sc = mon._scalars
    assert sc["keys"] == [["train", "loss"], ["val", "loss"], ["val", "acc"]] and sc["offsets"] == [0, 2, 3, 4]
    assert decode_array(sc["steps"]).tolist() == [0, 10, 0, 0] and decode_array(sc["values"]).tolist()[:2] == [2.0, 1.0]
    item = json.loads(mon._curves_item)
    assert "dv_series_2" in mon._curves_item and item["doc"]["roots"]
    ex = mon._ex
    assert decode_array(ex["ids"]).tolist() == [7, 3] and ex["uniform"] is True
    assert decode_array(ex["steps"]).tolist() == [0, 10]
    loss = decode_array(ex["loss"])
    assert loss[0].tolist() == [2.0, 0.5] and np.isnan(loss[1, 1])
    assert decode_array(ex["final_pred"]).tolist() == [1, 1]
    assert mon.notices == ["1 NaN or infinite per-example loss(es) (drawn as gaps)"]
    assert isinstance(mon.get_state()["_ex"]["loss"]["buffer"], memoryview)
    mon.selected_ids = [3]
    import traitlets

    with pytest.raises(traitlets.TraitError, match=r"selected_ids: 1 id\(s\) were never logged, e.g. \[99\]"):
        mon.selected_ids = [3, 99]
    mon.close()


def test_monitor_updates_are_throttled_and_the_rest_sent_by_flush() -> None:
    import time

    mon = _monitor()
    sent = []
    mon.observe(lambda ch: sent.append(time.perf_counter()), "_scalars")
    start = time.perf_counter()
    for step in range(3000):
        mon.log(step, loss=1.0 / (step + 1))
        mon.log_examples(step, np.arange(step % 50, step % 50 + 20), np.random.default_rng(step).random(20))
    elapsed = time.perf_counter() - start
    assert len(sent) <= 10 * elapsed + 1, f"{len(sent)} updates in {elapsed:.2f} s"
    mon.flush()
    from deepvis_widgets._arrays import decode_array

    assert decode_array(mon._scalars["steps"])[-1] == 2999, "flush sends what the throttle held back"
    assert mon._ex["uniform"] is False and len(decode_array(mon._ex["ids"])) == 69
    n_before = len(sent)
    mon.flush()
    assert len(sent) == n_before, "nothing new, nothing sent"
    mon.close()


def test_monitor_flushes_when_a_cell_finishes() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        mon = _monitor(max_updates_per_second=0.001)
        mon.log(0, loss=1.0)  # first update goes out at once
        mon.log(1, loss=0.5)  # held back by the throttle
        from deepvis_widgets._arrays import decode_array

        assert decode_array(mon._scalars["steps"]).tolist() == [0]
        shell.run_cell("1 + 1")
        assert decode_array(mon._scalars["steps"]).tolist() == [0, 1]
        mon.close()
        assert mon._after_cell not in shell.events.callbacks["post_run_cell"]
    finally:
        InteractiveShell.clear_instance()


def test_monitor_declared_examples_labels_and_errors() -> None:
    mon = _monitor(examples=np.zeros((4, 8, 8)), labels=[0, 1, 2, 1], class_names=["a", "b", "c"])
    assert mon._examples["kind"] == "image" and mon.label_names == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"ids: 1 id\(s\) were not declared when the monitor was created, e.g. \[4\]"):
        mon.log_examples(0, [0, 4], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"step: expected 5 or later \(the last step logged for train/loss\), got 4"):
        mon.log(5, loss=1.0)
        mon.log(4, loss=1.0)
    with pytest.raises(TypeError, match="labels: give example_ids"):
        _monitor(labels=[0, 1])
    with pytest.raises(ValueError, match=r"labels: expected 4 labels \(one per point\), got 2"):
        _monitor(examples=["a", "b", "c", "d"], labels=[0, 1])
    with pytest.raises(traitlets_error(), match="max_updates_per_second: expected a positive number"):
        _monitor(max_updates_per_second=0)
    mon.close()


def traitlets_error() -> type:
    import traitlets

    return traitlets.TraitError


def test_monitor_track_layers_shows_stats_and_cleans_up() -> None:
    from deepvis_widgets._arrays import decode_array

    mon = _monitor(max_updates_per_second=1000)
    net = _net()
    with mon.track_layers(net, every=2) as tracker:
        for _ in range(5):
            net(torch.randn(8, 4)).sum().backward()
    mon.flush()
    assert mon._layers["names"] == ["0", "1", "3"] and decode_array(mon._layers["steps"]).tolist() == [0, 2, 4]
    np.testing.assert_allclose(decode_array(mon._layers["metrics"]["grad_norm"]), tracker.stats.metrics["grad_norm"], rtol=1e-6)
    assert '"0"' in mon._layers_item and all(not m._forward_hooks for m in net.modules())
    other = _monitor()
    other.show_layer_stats(tracker)
    assert other._layers["names"] == ["0", "1", "3"]
    mon.close()
    other.close()


def test_a_tracked_model_can_be_copied_and_the_copy_is_not_tracked() -> None:
    import copy
    import pickle

    mon = _monitor()
    net = _net()
    with mon.track_layers(net, every=1) as tracker:
        net(torch.randn(4, 4)).sum().backward()
        twin = copy.deepcopy(net)  # a checkpoint taken mid-training
        pickle.loads(pickle.dumps(net))
        twin(torch.randn(4, 4)).sum().backward()
        assert tracker.step == 1, "the copy's passes are not counted"
        net(torch.randn(4, 4)).sum().backward()
    assert tracker.step == 2
    mon.close()
