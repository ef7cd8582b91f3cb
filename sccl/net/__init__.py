"""Layer 3, the network: the recurrent LIF layers (hand-written BPTT), the sparse input projection, the model.

Imports only sccl.core and sccl.data."""
