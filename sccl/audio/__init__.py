"""Layer 3 (beside sccl.net), audio: your own recordings -> SHD-layout spike files (``python -m sccl.audio``):
a cochlea model, audio file reading, class and speaker maps, a spoken-digit corpus for its calibration.

Imports only sccl.core and sccl.data."""
