"""Layer 3, audit: from run records to verdicts — conformance, statistics, results tables, the claims ledger,
the literature, Grad-CAM, the GPU benchmarks (throughput) and the summary. Imports from ``models`` and
``training``."""
