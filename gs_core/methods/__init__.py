"""Segmentation methods, one module each (baselines, gaga, trace3d, ...): compositions of the engine's
``project``, ``render`` and ``trace`` that the benchmark and the pipeline run; ``bench`` only registers them."""
