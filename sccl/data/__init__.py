"""Layer 2, data: SHD-layout HDF5 files (reading, validating, writing, binning), datasets, merging, downloading,
the embedded offline dataset, the data's shape, protocol splits and provenance labels.

Imports only sccl.core."""
