"""Every notebook executes top to bottom in quick mode (PVRNN_QUICK=1), so none can rot.

The committed notebooks carry the outputs of a full run; this re-executes them with shrunk
training in a scratch copy and never rewrites the committed files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


def test_the_five_experiments_are_there():
    names = [path.stem for path in NOTEBOOKS]
    for prefix in ("01_sine", "02_clarinet", "03_piano", "04_sound_design", "05_lstm_vs_gru",
                   "07_backbones"):
        assert prefix in names, f"notebooks/{prefix}.ipynb is missing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PVRNN_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if output.get("output_type") == "error"
    ]
    assert not errors
    assert os.environ["PVRNN_QUICK"] == "1"
