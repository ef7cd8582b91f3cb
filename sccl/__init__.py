"""sccl: spiking compressed continual learning on SHD (after Dequino et al., ISVLSI 2024)."""

__version__ = "0.1.0"
