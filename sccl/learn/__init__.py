"""Layer 4, learning: datasets as batches, the training and prediction loops, pretraining, subspace bases.

Imports only the layers below (core, data, net)."""
