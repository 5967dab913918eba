"""The fast paths the bench measures: fused optimizers by default and ``train.amp`` on CPU
(bf16 only where the processor has bf16 units)."""

from __future__ import annotations

import logging

import pytest
import torch

from momentloc.config.schema import OptimConfig
from momentloc.engine import runtime
from momentloc.engine.optim import build_optimizer, fast_kernel_options


def test_fast_kernel_options_pick_fused_for_dense_float_parameters():
    assert fast_kernel_options([torch.nn.Parameter(torch.zeros(3))]) == {"fused": True}
    assert fast_kernel_options([]) == {}
    assert fast_kernel_options([torch.zeros(3, dtype=torch.long)]) == {}
    assert fast_kernel_options([torch.zeros(3, device="meta")]) == {}   # no fused kernel there


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_follows_the_reference_update(name):
    torch.manual_seed(0)
    cfg = OptimConfig(name=name, lr=1e-2, weight_decay=1e-3, momentum=0.9)
    ref_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    model = torch.nn.Linear(4, 3)
    twin = torch.nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    fused = build_optimizer(model.parameters(), cfg)
    assert fused.defaults["fused"] is True
    extra = {"momentum": cfg.momentum} if name == "sgd" else {"betas": cfg.betas, "eps": cfg.eps}
    ref = ref_cls(twin.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False,
                  **extra)
    for _ in range(20):
        x = torch.randn(8, 4)
        for m, opt in ((model, fused), (twin, ref)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.equal(model.weight, torch.nn.Linear(4, 3).weight)


def test_cpu_amp_uses_bf16_only_with_bf16_units(monkeypatch, caplog):
    cpu = torch.device("cpu")
    assert runtime.amp_dtype(cpu, False) is None
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.amp_dtype(cpu, True) is torch.bfloat16
    with runtime.autocast(cpu, True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(runtime, "_warned_cpu_amp", False)
    with caplog.at_level(logging.WARNING, logger="momentloc"):
        assert runtime.amp_dtype(cpu, True) is None
        with runtime.autocast(cpu, True):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    warnings = [r for r in caplog.records if "no bf16 units" in r.getMessage()]
    assert len(warnings) == 1 and "fp32" in warnings[0].getMessage()      # said once


def test_cpu_has_bf16_reads_the_processor_flags(monkeypatch, tmp_path):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    import builtins

    real_open = builtins.open

    def fake_cpuinfo(flags: str):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        return lambda f, *a, **k: real_open(path if f == "/proc/cpuinfo" else f, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_cpuinfo("fpu sse avx2 avx512f"))
    assert runtime.cpu_has_bf16() is False
    monkeypatch.setattr(builtins, "open", fake_cpuinfo("fpu avx512f avx512_bf16"))
    assert runtime.cpu_has_bf16() is True
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(builtins, "open", fake_cpuinfo("fpu"))
    assert runtime.cpu_has_bf16() is True
