"""Discovery of the golden fixtures computed by the official 2D-TAN and CSMGAN code.

Every folder holding a ``fixture.pt`` under the golden directory (``$MOMENTLOC_GOLDEN``, default
``../shared/golden`` beside the repository) is classified by its contents, never by its name,
so fixtures of the same kinds with other seeds, batch sizes and widths are checked too:

- ``tan2d_model``: ``meta.official_repo`` names 2D-TAN and the file holds a ``state_dict``;
- ``tan2d_eval``: 2D-TAN, no ``state_dict`` (the official eval/nms/iou procedures);
- ``csmgan_model`` / ``cmin_eval``: the same for CSMGAN.

A test asks for the argument ``golden_<kind>`` (e.g. ``golden_tan2d_model``) and is run once
per fixture of that kind, receiving ``(folder, fixture_dict)``; it skips, saying why, when the
directory or every fixture of that kind is absent.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pytest
import torch

KINDS = ("tan2d_model", "tan2d_eval", "csmgan_model", "cmin_eval")


def golden_root() -> Path:
    env = os.environ.get("MOMENTLOC_GOLDEN")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "golden"


def classify(fixture: dict) -> str | None:
    repo = str(fixture.get("meta", {}).get("official_repo", "")).lower()
    has_model = "state_dict" in fixture
    if "2d-tan" in repo:
        return "tan2d_model" if has_model else "tan2d_eval"
    if "csmgan" in repo:
        return "csmgan_model" if has_model else "cmin_eval"
    return None


@lru_cache(maxsize=None)
def load_fixture(folder: str) -> dict:
    return torch.load(Path(folder) / "fixture.pt", weights_only=True)


@lru_cache(maxsize=1)
def discover() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {k: [] for k in KINDS}
    root = golden_root()
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("fixture.pt")):
        kind = classify(load_fixture(str(path.parent)))
        if kind is not None:
            found[kind].append(str(path.parent))
    return found


def pytest_generate_tests(metafunc):
    for kind in KINDS:
        arg = f"golden_{kind}"
        if arg in metafunc.fixturenames:
            folders = discover()[kind]
            if folders:
                metafunc.parametrize(arg, folders, ids=[Path(f).name for f in folders],
                                     indirect=True)
            else:
                metafunc.parametrize(arg, [None], ids=["absent"], indirect=True)


def _golden(request):
    if request.param is None:
        root = golden_root()
        why = (f"golden directory {root} is absent (set MOMENTLOC_GOLDEN)" if not root.is_dir()
               else f"no fixture of this kind under {root}")
        pytest.skip(why)
    return Path(request.param), load_fixture(request.param)


@pytest.fixture
def golden_tan2d_model(request):
    return _golden(request)


@pytest.fixture
def golden_tan2d_eval(request):
    return _golden(request)


@pytest.fixture
def golden_csmgan_model(request):
    return _golden(request)


@pytest.fixture
def golden_cmin_eval(request):
    return _golden(request)
