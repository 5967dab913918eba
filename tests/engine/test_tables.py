"""Paper tables: every row trains into its own run directory."""

import re

import pytest

from momentloc.engine.tables import list_tables, load_table, row_dir_name
from momentloc.errors import ConfigError


@pytest.mark.parametrize("name", [n for n, _ in list_tables()])
def test_rows_of_every_shipped_table_get_distinct_run_dirs(name):
    table = load_table(name)
    dirs = [row_dir_name(r.label) for r in table.rows]
    assert len({d.lower() for d in dirs}) == len(dirs), dirs
    for d in dirs:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", d) and d not in (".", ".."), d


def test_cma_ours_and_ours_plus_do_not_share_a_directory():
    table = load_table("cma-results")
    dirs = {r.label: row_dir_name(r.label) for r in table.rows}
    assert dirs["Ours"] == "Ours"
    assert dirs["Ours+"].startswith("Ours-") and dirs["Ours+"] != dirs["Ours"]


@pytest.mark.parametrize("label", ["w/o gate", "Ours+", "k = 3", "..", "a" * 200, "über"])
def test_row_dir_name_is_deterministic_and_filesystem_safe(label):
    name = row_dir_name(label)
    assert name == row_dir_name(label)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) and not name.startswith(".")


def test_labels_that_only_differ_in_replaced_characters_stay_apart():
    labels = ["w/o gate", "w-o gate", "w o gate", "w/o_gate", "w_o_gate"]
    assert len({row_dir_name(x) for x in labels}) == len(labels)


def test_a_table_whose_rows_would_share_a_directory_is_refused(tmp_path):
    path = tmp_path / "clash.yaml"
    path.write_text("name: clash\ntitle: t\ndataset: charades-sta\nmetrics: [R1@0.5]\nrows:\n"
                    "  - {label: Ours, model: cma, preset: charades}\n"
                    "  - {label: ours, model: cma, preset: charades_plus}\n")
    with pytest.raises(ConfigError, match="would share the run directory"):
        load_table(str(path))


def test_printed_table_carries_row_notes_and_table_notes():
    from momentloc.engine.tables import format_paper_table

    table = load_table("cimha-ablation")
    run = ("CI-MHA", "CI-MHA swap (other reading)")
    results = [{"label": r.label, "metrics": {"R1@0.5": 0.5}, "prior_baseline": {"R1@0.5": 0.2},
                "paper": r.paper} for r in table.rows if r.label in run]
    text = format_paper_table(table, results)
    assert "CI-MHA: eqs. 7-9: literal_aligned" in text
    assert "CI-MHA swap (other reading): not a paper row; eqs. 7-9: swap" in text
    assert "pool_broadcast (eq. 7" not in text  # rows not run print no note
    assert "cannot be implemented as printed" in text


@pytest.mark.parametrize("name", [n for n, _ in list_tables() if n.startswith("cimha")])
def test_every_cimha_row_names_its_reading_of_eqs_7_to_9(name):
    from momentloc.config import load_config

    table = load_table(name)
    assert "cannot be implemented as printed" in table.notes
    for row in table.rows:
        mode = load_config(row.model, row.preset, row.set).model.ci_mode
        assert f"eqs. 7-9: {mode}" in row.note, (row.label, mode)
