"""Layer 6, continual learning: scenarios (task sequences), the metrics, what a strategy sees (``context``), the
strategies (one file each), a run's settings and identity (``runs``) and the one runner (``engine``).

Imports only the layers below (core .. replay)."""
