"""Benchmarks of rvoslib's stages, measured side by side; run ``python -m benchmarks.run``."""
