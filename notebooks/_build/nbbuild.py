"""Tiny helper shared by the notebook generators in this folder.

Each ``nbNN.py`` describes one notebook as a list of markdown and code cells and
writes it with :meth:`Notebook.write`. Notebooks are written the way they are
committed: no outputs, no execution counts, stable cell ids, so regenerating an
unchanged notebook gives a byte-identical file and a diff of the generator is the
review.

Usage (from the repository root)::

    .venv/bin/python notebooks/_build/nb03.py        # one notebook
    .venv/bin/python notebooks/_build/build_all.py   # every nbNN.py here

Check a notebook without touching the committed (stripped) file::

    RVOSLIB_MODE=fast .venv/bin/jupyter nbconvert --to notebook --execute \\
        notebooks/03_temporal_prompt_tuning.ipynb --output /tmp/nbcheck/03.ipynb
    .venv/bin/pytest --nbval notebooks/03_temporal_prompt_tuning.ipynb -p no:cacheprovider
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK_DIR = Path(__file__).resolve().parents[1]

KERNEL_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "pygments_lexer": "ipython3"},
}


def _clean(source: str) -> str:
    return textwrap.dedent(source).strip("\n")


class Notebook:
    """Collects cells in order; ``md`` and ``code`` take (dedented) triple-quoted strings."""

    def __init__(self, name: str):
        self.name = name  # file name, e.g. "03_temporal_prompt_tuning.ipynb"
        self.cells = []

    def md(self, source: str) -> "Notebook":
        self.cells.append(new_markdown_cell(_clean(source)))
        return self

    def code(self, source: str) -> "Notebook":
        self.cells.append(new_code_cell(_clean(source)))
        return self

    def write(self) -> Path:
        """Write ``notebooks/<name>`` without outputs; returns the path."""
        nb = new_notebook(cells=self.cells, metadata=dict(KERNEL_METADATA))
        prefix = Path(self.name).stem.split("_")[0]
        for index, cell in enumerate(nb.cells):
            cell["id"] = f"nb{prefix}-{index:03d}"  # stable ids: no churn on regeneration
            if cell["cell_type"] == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
        nbformat.validate(nb)
        path = NOTEBOOK_DIR / self.name
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        return path


def setup_cell(body: str = "") -> str:
    """The first code cell of every notebook: the run-time helper, the repository root, then ``body``.

    Notebooks run with ``notebooks/`` as the working directory, so data paths are
    taken relative to ``ROOT``, the first folder upwards that holds ``data_samples/``.
    """
    head = '''
        from rvoslib.runtime import setup

        rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present)

        from pathlib import Path

        ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "data_samples").is_dir())
        print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")
    '''
    return _clean(head) + ("\n\n" + _clean(body) if body.strip() else "")
