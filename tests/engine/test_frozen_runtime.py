"""Frozen compute in onnxruntime: export once, check against torch, fall back to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.config import Precision, Runtime
from engine.frozen import FrozenForward, use_onnxruntime
from engine.frozen.forward import onnx_key
from engine.training.devices import Placement

CPU = Placement(device=torch.device("cpu"), precision=Precision.FP32, description="CPU")
PARTS = {"cut": "features", "backbone": "tiny", "input_size": 16}


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()


def images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def frozen(net: nn.Module, cache, runtime=Runtime.AUTO, **kw) -> tuple[FrozenForward, list]:
    lines: list[tuple[str, str]] = []
    fwd = FrozenForward(
        net,
        placement=CPU,
        runtime=runtime,
        cache_dir=cache,
        key_parts=kw.pop("key_parts", PARTS),
        log=lambda text, level: lines.append((level, text)),
        **kw,
    )
    return fwd, lines


def test_auto_on_cpu_runs_onnxruntime_and_matches_torch(tmp_path):
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    x = images()
    got = fwd(x)
    assert fwd.name == "onnxruntime"
    with torch.inference_mode():
        torch.testing.assert_close(got, net(x), rtol=1e-4, atol=1e-5)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    assert lines[0][0] == "info" and "exported" in lines[0][1] and "checked" in lines[0][1]
    # Later batches of another size run in the same session.
    with torch.inference_mode():
        torch.testing.assert_close(fwd(x[:3]), net(x[:3]), rtol=1e-4, atol=1e-5)


def test_the_export_is_reused_and_its_check_trusted_while_unchanged(tmp_path, monkeypatch):
    import engine.frozen.forward as forward

    net = tiny_net()
    frozen(net, tmp_path)[0](images())
    other = tmp_path / "other"
    frozen(tiny_net(seed=9), other)[0](images())
    file = next(tmp_path.glob("*.onnx"))
    stamp = file.stat().st_mtime_ns
    checks: list[int] = []
    real_check = forward.check
    monkeypatch.setattr(forward, "check", lambda *a, **k: checks.append(1) or real_check(*a, **k))
    fwd, lines = frozen(net, tmp_path)
    with torch.inference_mode():
        torch.testing.assert_close(fwd(images()), net(images()), rtol=1e-4, atol=1e-5)
    assert fwd.name == "onnxruntime" and checks == []  # the same bytes, the same weights
    assert file.stat().st_mtime_ns == stamp  # not exported again
    assert "exported" not in lines[0][1] and "checked against torch when first used" in lines[0][1]
    # Other bytes under the key (here: another valid export) are checked again.
    file.write_bytes(next(other.glob("*.onnx")).read_bytes())
    fwd, lines = frozen(net, tmp_path)
    fwd(images())
    assert checks == [1] and fwd.name == "torch" and "differ from torch's" in lines[0][1]


def test_torch_runtime_never_exports(tmp_path):
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path, runtime=Runtime.TORCH)
    with torch.inference_mode():
        assert torch.equal(fwd(images()), net(images()))
    assert fwd.name == "torch" and lines == [] and not list(tmp_path.iterdir())


def test_gpu_placements_keep_torch():
    assert not use_onnxruntime(Runtime.AUTO, torch.device("cuda"))
    assert not use_onnxruntime(Runtime.ONNXRUNTIME, torch.device("mps"))
    assert use_onnxruntime(Runtime.ONNXRUNTIME, torch.device("cpu"))
    assert not use_onnxruntime(Runtime.TORCH, torch.device("cpu"))


def test_a_failed_export_falls_back_to_torch_with_a_sentence(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::weird")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    with torch.inference_mode():
        assert torch.equal(fwd(images()), net(images()))
    assert fwd.name == "torch"
    assert lines == [
        (
            "warning",
            "The frozen network runs in torch: torch could not export it to ONNX (Unsupported "
            "operator aten::weird; Unsupported operator aten::weird).",
        )
    ]
    assert not list(tmp_path.glob("*.onnx"))


def test_a_cached_export_of_another_network_fails_the_check(tmp_path):
    # Someone (or a bug) left the export of different weights under this network's key.
    frozen(tiny_net(seed=5), tmp_path)[0](images())
    net = tiny_net(seed=0)
    fwd, lines = frozen(net, tmp_path)
    with torch.inference_mode():
        assert torch.equal(fwd(images()), net(images()))
    assert fwd.name == "torch"
    assert lines[0][0] == "warning" and "differ from torch's" in lines[0][1]
    assert not list(tmp_path.glob("*.onnx"))  # removed: the next run exports afresh
    fwd, _ = frozen(net, tmp_path)
    fwd(images())
    assert fwd.name == "onnxruntime"


@pytest.mark.parametrize(
    "content",
    [b"", b"not an onnx model at all", b"\x08\x07" + bytes(range(256)) * 4],
)
def test_a_damaged_cache_file_falls_back_and_is_replaced_next_time(tmp_path, content):
    path = tmp_path / f"{onnx_key(PARTS)}.onnx"
    path.write_bytes(content)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    with torch.inference_mode():
        assert torch.equal(fwd(images()), net(images()))
    assert fwd.name == "torch" and lines[0][0] == "warning"
    assert "onnxruntime could not load" in lines[0][1]
    assert not path.exists()


def test_a_fifo_in_the_cache_is_replaced_not_read(tmp_path):
    import os

    path = tmp_path / f"{onnx_key(PARTS)}.onnx"
    os.mkfifo(path)
    fwd, _ = frozen(tiny_net(), tmp_path)
    fwd(images())  # reading the pipe would block forever
    assert fwd.name == "onnxruntime" and path.is_file()


def test_argmax_check_for_class_scores(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(tiny_net(), nn.Linear(16, 3)).eval()
    fwd, _ = frozen(net, tmp_path, argmax=True, key_parts={**PARTS, "cut": "logits"})
    x = images(8)
    with torch.inference_mode():
        expected = net(x)
    got = fwd(x)
    assert fwd.name == "onnxruntime"
    assert np.array_equal(got.argmax(1).numpy(), expected.argmax(1).numpy())


def test_the_key_names_everything_given():
    assert onnx_key(PARTS) == onnx_key(dict(PARTS))
    assert onnx_key(PARTS) != onnx_key({**PARTS, "input_size": 32})


def test_exporting_through_a_fresh_wrapper_leaves_the_network_in_eval_mode(tmp_path):
    from engine.frozen.onnx import export

    net = nn.Sequential(tiny_net(), nn.Dropout(0.5)).eval()

    class Wrapper(nn.Module):  # a new module is in training mode
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    export(Wrapper(), images(1), tmp_path / "w.onnx")
    assert not any(m.training for m in net.modules())


def test_the_torch_export_exporter_takes_over_when_the_older_one_fails(tmp_path, monkeypatch):
    import engine.frozen.onnx as onnx

    real = onnx._export

    def only_dynamo(module, args, path, dynamo, **kw):
        if not dynamo:
            raise RuntimeError("TorchScript exporter gone")
        return real(module, args, path, dynamo, **kw)

    monkeypatch.setattr(onnx, "_export", only_dynamo)
    net = tiny_net()
    how = onnx.export(net, images(1), tmp_path / "d.onnx")
    session = onnx.OnnxSession(tmp_path / "d.onnx", threads=1)
    assert how == "torch.export (dynamo)"
    with torch.inference_mode():
        torch.testing.assert_close(session(images(5)), net(images(5)), rtol=1e-4, atol=1e-5)


def test_a_record_not_signed_with_this_users_key_is_checked_again(tmp_path, monkeypatch):
    import json

    import engine.frozen.forward as forward

    net = tiny_net()
    frozen(net, tmp_path)[0](images())
    record = next(tmp_path.glob("*.checked.json"))
    checks: list[int] = []
    real_check = forward.check
    monkeypatch.setattr(forward, "check", lambda *a, **k: checks.append(1) or real_check(*a, **k))
    frozen(net, tmp_path)[0](images())
    assert checks == []  # signed by this user's key: trusted
    forged = json.loads(record.read_text())
    forged["signature"] = "0" * 64
    record.write_text(json.dumps(forged))
    frozen(net, tmp_path)[0](images())
    assert checks == [1]  # checked again, and signed anew
    monkeypatch.setenv("REFIT_CONFIG_DIR", str(tmp_path / "another-user"))
    frozen(net, tmp_path)[0](images())
    assert checks == [1, 1]  # a workspace copied to another user: checked once more


class _Tokens(nn.Module):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.float().mean(dim=1, keepdim=True)


def test_another_network_under_the_exports_name_falls_back_to_torch(tmp_path):
    """A file under the export's name that onnxruntime loads but cannot feed images to (a text
    network's integer input) is checked, removed, and torch runs: no onnxruntime error out."""
    from engine.frozen.onnx import export

    net = tiny_net()
    fwd, _ = frozen(net, tmp_path)
    fwd(images())
    (path,) = tmp_path.glob("*.onnx")
    export(_Tokens(), (torch.zeros(2, 5, dtype=torch.long),), path, inputs={"ids": {0: "b"}})
    path.with_name(path.name.replace(".onnx", ".checked.json")).unlink()
    again, lines = frozen(net, tmp_path)
    got = again(images())
    assert again.name == "torch" and not path.exists()
    assert lines[0][0] == "warning" and "runs in torch" in lines[0][1]
    with torch.inference_mode():
        torch.testing.assert_close(got, net(images()))
