"""Model registry: self-registration, captured constructor arguments, interfaces, versions, discovery."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry

try:
    import neuralop  # noqa: F401

    HAS_NEURALOP = True
except ImportError:
    HAS_NEURALOP = False

PACKAGE = "wavesurrogate.nn.models"
_CNN = {"n_in": 2, "n_out": 1, "width": 4, "depth": 1, "conv": {"format": "cp", "rank": 2}}
_ONET = {"n_params": 3, "n_basis": 8, "branch_width": 8, "trunk_width": 8, "n_fourier": 4}
_GEOMETRY = {"coord_min": [0.0, 0.0, 0.0], "coord_max": [1.0, 1.0, 0.01], "source_params": [0, 1],
             "param_mean": [0.5, 0.5, 0.0], "param_std": [0.2, 0.2, 1.0], "c_ref_mps": 343.0,
             "f_max_hz": 500.0}
_GEOMETRY3 = {**_GEOMETRY, "coord_min": [0.0, 0.0, 0.0, 0.0], "coord_max": [1.0, 1.0, 1.0, 0.01],
              "source_params": [0, 1, 2], "param_std": [0.2, 0.2, 0.2]}
_FNO = {"n_in": 1, "n_out": 1, "n_modes": (4, 4), "hidden_channels": 4}


def _examples() -> dict[str, tuple[dict, tuple[torch.Tensor, ...]]]:
    """Small constructor kwargs and inputs for every built-in model."""
    g = torch.Generator().manual_seed(1)
    frames, params, coords = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, generator=g), torch.rand(
        2, 5, 3, generator=g)  # fmt: skip
    return {
        "cnn2d": (_CNN, (frames,)),
        "unet2d": (_CNN, (frames,)),
        "cnn3d": (_CNN, (frames,)),
        "wavestep2d": ({"n_in": 2, "n_out": 1, "width": 3, "depth": 2, "kernel_size": 3, "hidden": 4},
                       (frames,)),
        "elastic_cnn2d": ({"n_in": 2, "n_out": 1, "width": 4, "blocks": 2, "rank": 3}, (frames,)),
        "fno": (_FNO, (frames[:, :2],)),
        "tfno": (_FNO, (frames[:, :2],)),
        "deeponet": (_ONET, (params, coords)),
        "deeponet_cnn": ({**_ONET, "channels": [4], "conv": "tucker", "conv_rank": 2},
                         (params, coords, frames[:, 0])),
        "field_decoder": ({"n_params": 3, "n_frames": 2, "ny": 8, "nx": 8, "width": 4, "latent": 2,
                           "n_up": 2}, (params, coords)),
        "relative_operator": ({"n_params": 3, "geometry": _GEOMETRY, "width": 8}, (params, coords)),
        "separable_operator": ({"n_params": 3, "geometry": _GEOMETRY3, "width": 8, "trunk_width": 8,
                                "n_basis": 4, "n_fourier_t": 4}, (params, torch.rand(2, 5, 4, generator=g))),
        "pod_deeponet": ({"n_params": 3, "n_frames": 2, "ny": 4, "nx": 4, "n_basis": 3, "branch_width": 8},
                         (params, coords)),
        "modal_operator": ({"n_params": 3, "geometry": _GEOMETRY3, "grid_shape": [3, 4, 5],
                            "spacing_m": [0.5, 0.33, 0.25], "n_modes": 4, "n_times": 6, "t0_s": 0.0,
                            "dt_s": 0.002}, (params, torch.rand(2, 5, 4, generator=g))),
        "dmfdal": ({"n_params": 3, "n_out": 4, "n_fidelities": 2, "latent": 2, "hidden": 8},
                   (params, torch.tensor([0, 1]), torch.randn(2, 4, generator=g))),
        "mf_ensemble": ({"n_params": 3, "n_out": 4, "n_fidelities": 2, "members": 2, "hidden": 8},
                        (params, torch.tensor([1, 0]))),
        "trace_cnn": ({"n_params": 3, "n_boundary": 12, "n_times": 16, "trace_dt_s": 0.01, "hidden": 8,
                       "latent_channels": 4, "latent_shape": (4, 4), "channels": [4]}, (params,)),
    }


def _builtin() -> list[str]:
    """Registered names whose class lives in wavesurrogate.nn.models (tests register helpers of their own)."""
    return [n for n in registry.names() if registry.entry(n).cls.__module__.startswith(PACKAGE + ".")]


def test_every_builtin_model_has_an_example_here():
    assert sorted(_examples()) == sorted(_builtin())


@pytest.mark.parametrize("name", sorted(_examples()))
def test_captured_kwargs_rebuild_the_same_model(name):
    if name in ("fno", "tfno") and not HAS_NEURALOP:
        pytest.skip("neuralop (optional extra .[operators]) not installed")
    kwargs, inputs = _examples()[name]
    torch.manual_seed(0)
    a = registry.build(name, kwargs)
    stored = json.loads(json.dumps(a.init_kwargs))  # as a run directory stores them
    assert stored == a.init_kwargs  # plain JSON data already: tuples became lists
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}.items() <= stored.items()
    torch.manual_seed(0)
    b = registry.build(name, stored)
    assert b.init_kwargs == stored
    sa, sb = a.state_dict(), b.state_dict()
    assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in sb.items()}
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    a.eval(), b.eval()
    with torch.no_grad():
        out_a, out_b = a(*inputs), b(*inputs)
        if isinstance(out_a, tuple):  # multi-fidelity models: (mean, variance)
            assert all(torch.equal(u, v) for u, v in zip(out_a, out_b, strict=True))
        else:
            assert torch.equal(out_a, out_b)


def test_captured_kwargs_hold_every_default_and_describe_rebuilds():
    model = registry.build("trace_cnn", {"n_params": 2, "n_boundary": 8, "n_times": 4, "trace_dt_s": 0.1})
    kw = model.init_kwargs
    assert kw["latent_shape"] == [16, 8] and kw["tau_window"] == [-2.0, 6.0] and kw["conv"] is None
    assert kw["channels"] == [32, 32, 16, 8] and kw["shift_knots"] == 0
    assert registry.describe(model) == {"name": "trace_cnn", "kwargs": kw, "version": 1}
    direct = type(registry.build("cnn2d", {}))(width=3)  # direct construction captures too
    assert direct.init_kwargs["width"] == 3 and direct.init_kwargs["n_in"] == 4


@pytest.mark.skipif(not HAS_NEURALOP, reason="neuralop (optional extra .[operators]) not installed")
def test_subclass_forwarding_kwargs_captures_the_parent_defaults():
    model = registry.build("tfno", {"n_in": 1, "n_out": 1, "n_modes": [4, 4], "hidden_channels": 4})
    assert model.init_kwargs["factorization"] == "tucker" and model.init_kwargs["rank"] == 0.1
    assert model.init_kwargs["n_layers"] == 4 and model.init_kwargs["positional_embedding"] is True


def test_every_model_declares_interface_version_and_capabilities():
    for name in registry.names():
        e = registry.entry(name)
        assert e.name == name and e.interface in registry.INTERFACES
        assert isinstance(e.version, int) and e.version >= 1 and e.cls.version == e.version
        assert isinstance(e.capabilities.get("onnx"), bool)
    interfaces = {n: registry.entry(n).interface for n in _builtin()}
    assert interfaces == {
        "cnn2d": registry.FRAMES, "unet2d": registry.FRAMES, "cnn3d": registry.FRAMES, "fno": registry.FRAMES,
        "wavestep2d": registry.FRAMES,
        "tfno": registry.FRAMES, "deeponet": registry.POINTS, "deeponet_cnn": registry.POINTS,
        "field_decoder": registry.POINTS, "trace_cnn": registry.TRACE, "relative_operator": registry.POINTS,
        "pod_deeponet": registry.POINTS, "separable_operator": registry.POINTS,
        "modal_operator": registry.POINTS,
        "elastic_cnn2d": registry.FRAMES,
        "dmfdal": registry.MULTI_FIDELITY, "mf_ensemble": registry.MULTI_FIDELITY,
    }  # fmt: skip
    assert not registry.entry("fno").capabilities["onnx"] and not registry.entry("tfno").capabilities["onnx"]
    assert registry.entry("cnn2d").capabilities["onnx"]


def test_register_rejects_unknown_interface_and_a_second_class_under_one_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="unknown interface"):
        registry.register("x", interface="forecast")

    class Other(nn.Module):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        registry.register("cnn2d")(Other)

    @registry.register("test_registry_versioned", interface=registry.POINTS, capabilities={"onnx": False})
    class Versioned(nn.Module):
        version = 3

        def __init__(self, width: int = 2, **extra: int) -> None:
            super().__init__()

    e = registry.entry("test_registry_versioned")
    assert (e.version, e.capabilities, e.interface) == (3, {"onnx": False}, registry.POINTS)
    assert Versioned(extra_arg=5).init_kwargs == {"width": 2, "extra_arg": 5}


def test_a_model_module_that_fails_to_import_makes_discovery_raise(tmp_path, monkeypatch):
    import wavesurrogate.nn.models as models

    (tmp_path / "zz_broken.py").write_text("raise RuntimeError('boom: a dependency is missing')\n")
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    want = r"nn\.models\.zz_broken failed to import: RuntimeError: boom"
    with pytest.raises(ImportError, match=want) as info:
        registry.names()
    assert "\n" not in str(info.value)
    with pytest.raises(ImportError, match="zz_broken"):  # not silenced on the next call either
        registry.entry("cnn2d")


def test_discovery_without_neuralop_imports_the_fno_module(monkeypatch):
    import wavesurrogate.nn.models as models

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setitem(sys.modules, "neuralop", None)
    monkeypatch.setitem(sys.modules, "neuralop.models", None)
    monkeypatch.delitem(sys.modules, "wavesurrogate.nn.models.fno", raising=False)
    monkeypatch.setattr(models, "fno", getattr(models, "fno", None), raising=False)
    assert {"fno", "tfno", "cnn2d"} <= set(registry.names())
    assert registry.entry("fno").cls.__module__ == "wavesurrogate.nn.models.fno"
    with pytest.raises(ConfigError, match=r"pip install \.\[operators\]"):
        registry.build("fno", {"n_in": 1, "n_out": 1})


def test_task_names_live_only_in_tasks():
    """The task names appear in src/ only under tasks/ (and as the config's default in config/)."""
    root = Path(registry.__file__).parents[1]
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tasks", "config"):
            continue
        text = path.read_text(encoding="utf-8").lower()
        for task in ('"forecast"', '"source_to_field"', '"boundary_trace"', '"source_to_receiver"',
                     "forecast", "source_to_field", "boundary_trace", "source_to_receiver"):
            if rel.parts[0] == "nn" or task.startswith('"'):
                assert task not in text, f"{rel} names the task {task}"
