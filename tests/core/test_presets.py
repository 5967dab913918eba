"""Every shipped preset and paper table loads, validates and builds its model."""

import pytest

from momentloc.config import list_presets, load_config
from momentloc.engine.bench import bench_context
from momentloc.engine.tables import list_tables, load_table
from momentloc.models import create_model, list_models

PRESETS = [(m, p) for m in list_models() for p in list_presets(m)]


@pytest.mark.parametrize("model,preset", PRESETS, ids=[f"{m}/{p}" for m, p in PRESETS])
def test_preset_loads_and_builds(model, preset):
    cfg = load_config(model, preset)
    assert cfg.model_name == model
    net = create_model(model, cfg.model, bench_context(cfg))
    assert sum(p.numel() for p in net.parameters()) > 0
    # every loss weight names a term the model returns is checked in training; here: numbers
    assert all(isinstance(w, float) for w in cfg.model.loss_weights.values())


def test_every_model_has_presets():
    for m in list_models():
        assert list_presets(m), f"model {m} ships no preset"


@pytest.mark.parametrize("name", [n for n, _ in list_tables()])
def test_tables_reference_real_presets(name):
    table = load_table(name)
    assert table.rows and table.metrics
    for row in table.rows:
        assert row.preset in list_presets(row.model), (row.label, row.model, row.preset)
        load_config(row.model, row.preset, list(row.set))
        assert set(row.paper) <= set(table.metrics) | {"mIoU"}, row.label
