"""Layer 7 (beside sccl.report), jobs: the local job runner, persistent worker processes, Slurm arrays, and
fitting a study to the data it runs on.

Imports only the layers below (core .. cl)."""
