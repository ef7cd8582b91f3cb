"""Naive fine-tuning: train every parameter on the new data only (the forgetting baseline)."""

from sccl.cl.strategies.base import Strategy, Variant


class Naive(Strategy):
    name = "naive"
    description = "Naive fine-tuning: train every parameter on the new data only (the forgetting baseline)."

    @classmethod
    def variants(cls):
        return (Variant("naive", "naive", rank=0, sized=False),)
