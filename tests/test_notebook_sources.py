"""The committed notebooks agree with their jupytext sources and are committed clean.

Each ``notebooks/NN_*.ipynb`` is made from ``notebooks/src/NN_*.py`` (percent format) by
``jupytext --sync`` (pairing set in ``notebooks/jupytext.toml``). These tests fail when the two
disagree (a cell's type or source), when a notebook has outputs or execution counts, when its
kernel metadata is not what JupyterLab writes (opening it would mark it modified), or when a
notebook would draw widget progress bars (shown as "model not found" after saving and reopening).
"""

from __future__ import annotations

import copy
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = NOTEBOOKS / "src"
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# What JupyterLab writes for the python3 kernel of ipykernel.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
SETUP_CALL = "rt = setup("  # rvoslib.runtime.setup switches tqdm.auto to text bars (text_progress=True)


def cell_differences(notebook: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """Describe every way the cells of ``notebook`` differ from those of ``source`` (type, text)."""
    problems = []
    if len(notebook.cells) != len(source.cells):
        problems.append(f"{len(notebook.cells)} cells in the .ipynb, {len(source.cells)} in the source")
    for index, (a, b) in enumerate(zip(notebook.cells, source.cells)):
        if a.cell_type != b.cell_type:
            problems.append(f"cell {index}: {a.cell_type} in the .ipynb, {b.cell_type} in the source")
        elif a.source != b.source:
            problems.append(f"cell {index} ({a.cell_type}): text differs; first line {a.source.splitlines()[:1]}")
    return problems


def saved_results(notebook: nbformat.NotebookNode) -> list[str]:
    """Code cells that carry outputs or an execution count."""
    return [f"cell {index}" for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert IPYNBS, f"no notebooks found in {NOTEBOOKS}"
    notebooks = {p.stem for p in IPYNBS}
    sources = {p.stem for p in SOURCES.glob("[0-9][0-9]_*.py")}
    assert notebooks == sources, (f"without a source: {sorted(notebooks - sources)}; "
                                  f"without a notebook: {sorted(sources - notebooks)}")


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    notebook = nbformat.read(path, as_version=4)
    source = jupytext.read(SOURCES / f"{path.stem}.py")
    problems = cell_differences(notebook, source)
    assert not problems, (f"{path.name} disagrees with src/{path.stem}.py (run `jupytext --sync "
                          f"notebooks/src/{path.stem}.py`): " + "; ".join(problems))


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = saved_results(notebook)
    assert not dirty, f"{path.name} has outputs or execution counts in {dirty}: clear them before committing"


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_kernel_metadata_is_what_jupyterlab_writes(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata.get("kernelspec") == KERNELSPEC, f"{path.name}: kernelspec"
    info = notebook.metadata.get("language_info", {})
    expected = {"name": "python", "pygments_lexer": "ipython3", "mimetype": "text/x-python",
                "file_extension": ".py", "nbconvert_exporter": "python"}
    assert {k: info.get(k) for k in expected} == expected, f"{path.name}: language_info {info}"
    assert info.get("codemirror_mode") == {"name": "ipython", "version": 3}, f"{path.name}: codemirror_mode"


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_progress_bars_are_text(path):
    notebook = nbformat.read(path, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    source = first_code.source
    assert SETUP_CALL in source and "text_progress=False" not in source, \
        f"{path.name}: the first code cell must call rvoslib.runtime.setup, which switches tqdm to text bars"


def test_the_checks_catch_a_changed_cell_and_saved_outputs():
    path = IPYNBS[0]
    source = jupytext.read(SOURCES / f"{path.stem}.py")
    notebook = nbformat.read(path, as_version=4)
    assert not cell_differences(notebook, source)

    edited = copy.deepcopy(notebook)
    code_index = next(i for i, cell in enumerate(edited.cells) if cell.cell_type == "code")
    edited.cells[code_index].source += "\nprint('edited')"
    assert [p for p in cell_differences(edited, source) if p.startswith(f"cell {code_index} ")]

    retyped = copy.deepcopy(notebook)
    retyped.cells[code_index] = nbformat.v4.new_markdown_cell(retyped.cells[code_index].source)
    assert any("markdown in the .ipynb, code in the source" in p for p in cell_differences(retyped, source))

    shortened = copy.deepcopy(notebook)
    shortened.cells.pop()
    assert any("cells in the .ipynb" in p for p in cell_differences(shortened, source))

    run = copy.deepcopy(notebook)
    run.cells[code_index].execution_count = 1
    run.cells[code_index].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    assert saved_results(run) == [f"cell {code_index}"]
