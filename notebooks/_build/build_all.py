"""Regenerate every notebook that has a generator here (nbNN.py), stripped of outputs.

Run from anywhere: ``python notebooks/_build/build_all.py``.
"""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))  # the generators import nbbuild
    for script in sorted(HERE.glob("nb[0-9]*.py")):
        runpy.run_path(str(script), run_name="__main__")
