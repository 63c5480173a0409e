"""Execute the notebooks in place, storing their outputs (``make notebooks``).

Usage: python notebooks/execute.py [NAME.ipynb ...]   (default: every numbered notebook)
Set PVRNN_QUICK=1 for the shrunk training CI uses; the committed notebooks hold a full run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9]*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(HERE)}}).execute()
        partial = path.with_name(f".{path.name}.tmp")
        nbformat.write(notebook, partial)
        os.replace(partial, path)  # never a half-written notebook
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
