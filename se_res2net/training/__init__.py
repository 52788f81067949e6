"""Layer 2, training: data, the trainer and its checkpoints, run records, profiles, the sweep and its
executors, benchmarks. Imports from ``models``, never from ``audit``."""
