"""Layer 1, the ground: errors, the table of defaults, atomic file writing, locks, devices, one-line CLI errors.

Imports nothing from sccl."""
