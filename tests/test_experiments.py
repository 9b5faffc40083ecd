"""Every experiment's command still parses its flags (the scripts import the library, so a renamed API
breaks here, not when someone reruns the experiment)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = sorted(EXPERIMENTS.glob("*/*.py"))  # plot_results.py (no flags) is tested below


def test_every_experiment_has_a_command_and_a_readme():
    folders = sorted(p for p in EXPERIMENTS.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["color_spaces", "fusion", "multitask", "nas", "normalisation"]
    for folder in folders:
        assert (folder / "run.py").is_file() and (folder / "README.md").is_file(), folder


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_command_parses_its_flags(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_every_committed_result_has_its_plot():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import plot_results
    finally:
        sys.path.remove(str(EXPERIMENTS))
    for name, plot in plot_results.PLOTS.items():
        results = EXPERIMENTS / name / "results.json"
        if results.is_file():
            svg = plot(json.loads(results.read_text()))
            assert svg.startswith("<svg") and svg.count('class="point"') + svg.count('class="bar"') >= 3, name
            assert (EXPERIMENTS / name / "results.svg").read_text() == svg, f"rerun experiments/plot_results.py ({name})"
