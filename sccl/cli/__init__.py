"""Layer 8, command lines: pretraining, continual-learning runs, sweeps and tuning (the scripts in the
repository's folders are thin wrappers over these).

Imports any layer below."""
