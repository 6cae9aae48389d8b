"""Notebook 09's live path (the reduced study it trains when the study's file is missing), run in a
micro configuration so that it cannot rot while CI only ever sees the committed file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_notebook_09_trains_its_variants_live_when_the_study_file_is_missing(tmp_path):
    env = {**os.environ, "RVOSLIB_MODE": "fast", "RVOSLIB_NB09_STUDY": str(tmp_path / "missing.json"),
           "RVOSLIB_NB09_LIVE_STEPS": "4", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "notebooks/09_ablations.ipynb", "--nbval",
                           "-p", "no:cacheprovider", "-q"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout
