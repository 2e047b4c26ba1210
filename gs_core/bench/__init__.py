"""Benchmarks: each prints measured numbers and ratios against a reference run in the same process."""
