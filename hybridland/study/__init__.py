"""Benchmark studies: the climate-shift robustness study and its reference models."""
