"""Layer 1, models: the model registry, the blocks, the Res2Net / SE-Res2Net networks, the baselines, and what
they cost (parameters, MACs). Imports nothing from ``training`` or ``audit``."""
