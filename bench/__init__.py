"""Benchmarks: pyws and its peers back to back in one run, printing ratios."""
