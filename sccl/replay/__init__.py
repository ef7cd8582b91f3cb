"""Layer 5, replay memories: latents and raw counts, time compression, bit-packed storage, memory accounting,
and the memory's samples as training batches (at T steps or at their stored S steps).

Imports only the layers below (core, data, net, learn)."""
