"""Naive fine-tuning: train every parameter on the new data only (the forgetting baseline)."""

from sccl.strategies.base import Strategy


class Naive(Strategy):
    name = "naive"
    description = "Naive fine-tuning: train every parameter on the new data only (the forgetting baseline)."
