"""Layer 7 (beside sccl.jobs), outputs: finished runs -> rows, tables, figures, REPORT.md and the
generated result blocks of docs/RESULTS.md (``python -m sccl.report``).

Imports only the layers below (core .. cl)."""
