"""Latent replay (Pellegrini et al., 2020), with the paper's time compression as a parameter: freeze the layers at
or below ``latent_depth``, store their activity on past tasks' samples (optionally keeping only S of the T steps,
windows OR-ed or summed), and train the layers above on the new data plus the replayed latents.

``--regularizer NAME`` adds a regularisation or projection strategy on top (:data:`REGULARIZERS`): an instance of
that strategy with the same settings and context, whose hooks run after the replay's on the trained layers above
the cut; its memory is added to the replay's. A hosted strategy has its own numeric defaults (:func:`hosted`):
those :func:`sccl.core.defaults.tuned` holds for ``latent_replay+NAME``, else the strategy's untuned ones (a value
tuned for the strategy alone, which trains every layer without replay, is not assumed to suit the combination).
"""

import math
from functools import lru_cache

import torch

from sccl.cl.footprint import FLOAT32_VALUE_BYTES, value_bytes_of
from sccl.cl.scenarios import memory_units
from sccl.cl.strategies.base import EntryPoint, Flag, Variant, tuned_flags
from sccl.cl.strategies.ewc import OnlineEWC
from sccl.cl.strategies.lwf import LearningWithoutForgetting
from sccl.cl.strategies.projection import Projection
from sccl.cl.strategies.replaying import REPLAY_FLAGS, ReplayStrategy
from sccl.cl.strategies.si import SynapticIntelligence
from sccl.core.defaults import COMPRESSED
from sccl.core.errors import ConfigError
from sccl.learn.training import raw_batches
from sccl.net.footprint import trained_values
from sccl.net.model import DEFAULT_HIDDEN_SIZES
from sccl.replay.building import build_latent_memory
from sccl.replay.memory import MODES, divisors, kind_for_depth, payload_bytes


BUDGET_FLAG = Flag("--budget-bytes", "budget_bytes", "fit the learning state (replay memory, trained weights, "
                   "optimiser state) into this many bytes: keep --latent-depth and --latent-batches and compress in "
                   "time until it fits, then store fewer batches, then cut deeper; the run says what it chose "
                   "(default: no budget)", default=None)

#: strategies that can run on top of latent replay (``--regularizer``), by name
REGULARIZERS = {cls.name: cls for cls in (OnlineEWC, SynapticIntelligence, LearningWithoutForgetting, Projection)}



@lru_cache(maxsize=None)
def hosted(host: str, name: str):
    """Strategy ``name``'s class as hosted by ``host``: the same class but for its flags' defaults, which are those
    tuned for ``HOST+NAME`` (then ``latent_replay+NAME``), else its untuned ones (``untuned_flags``)."""
    cls = REGULARIZERS[name]
    methods = tuple(dict.fromkeys((f"{host}+{name}", f"latent_replay+{name}")))
    flags = tuned_flags(methods, getattr(cls, "untuned_flags", cls.flags))
    return type(cls.__name__, (cls,), {"flags": flags, "__doc__": f"{name} hosted by {host}"})


class LatentReplay(ReplayStrategy):
    name = "latent_replay"
    description = ("Latent replay: freeze the layers at or below --latent-depth, store their activity on past "
                   "tasks' batches (compressed in time with --latent-subsample), and train the layers above on new "
                   "data plus the replayed latents.")
    min_replay_batches = 0  # progressive with k = 0: the frozen network without replay
    flags = (
        Flag("--latent-depth", "latent_depth", "cut depth 0-3: 0 = layer-1 input currents, 1-3 = spikes of that "
             "layer (layers at or below are frozen)", scenario_default="latent_depth"),
        Flag("--latent-batches", "replay_batches", "batches whose latents are stored (class scenarios: per class)",
             scenario_default="latent_batches"),
        Flag("--latent-subsample", "stored_steps", "stored time steps S (must divide the T steps; compression 1:T/S); "
             "default: no compression"),
        Flag("--compression", "compression", "or: 1 if any spike in the window (the paper); sum: the spike count",
             type=str, default="or", choices=MODES),
    ) + REPLAY_FLAGS
    #: the original's compressed-latent-replay scripts: S = 10 of T, lr 1e-3; swept over S = 50, 20, 10
    entry_points = {"latent_replay_subsampled": EntryPoint(
        {"stored_steps": COMPRESSED["stored_steps"], "lr": COMPRESSED["lr"]}, {"subsample": [50, 20, 10]},
        two_task_lr=COMPRESSED["lr"])}
    sweep_axes = {"depths": "--latent-depth", "latent_batches": "--latent-batches", "subsample": "--latent-subsample",
                  "compression": "--compression"}

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        name = cfg.options.get("regularizer", "none")
        self.regularizer = None if name == "none" else hosted(self.name, name)(cfg, self.hosted_context())

    def hosted_context(self):
        """The context the hosted strategy sees (here the run's own)."""
        return self.ctx

    @classmethod
    def all_flags(cls):
        """Latent replay's flags, ``--regularizer`` and the flags of every strategy it can host."""
        names = list(REGULARIZERS)
        own = cls.flags + (Flag("--regularizer", "regularizer", "a regularisation or projection strategy on top of "
                                "the replay, on the layers above the cut", type=str, default="none",
                                choices=("none", *names)),)
        flags = {f.name: f for f in own + (BUDGET_FLAG,)}
        for name in names:
            for f in hosted(cls.name, name).flags:
                flags.setdefault(f.name, f)  # a flag two hosted strategies share appears once
        return tuple(flags.values())

    @classmethod
    def used_flags(cls, values):
        """Its own flags, ``--regularizer`` and the hosted strategy's when one is asked for, ``--budget-bytes``
        when given (so that a run without them keeps the stamp it always had)."""
        name = values.get("regularizer", "none")
        budget = (BUDGET_FLAG,) if values.get("budget_bytes") is not None else ()
        if name == "none":
            return cls.flags + budget
        return (cls.flags + tuple(f for f in cls.all_flags() if f.dest == "regularizer") + hosted(cls.name, name).flags
                + budget)

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        if cfg.options["latent_depth"] not in (0, 1, 2, 3):
            raise ConfigError(f"--latent-depth must be 0, 1, 2 or 3, got {cfg.options['latent_depth']}")
        name = cfg.options.get("regularizer", "none")
        if name != "none":
            if name not in REGULARIZERS:
                raise ConfigError(f"--regularizer must be none or one of {', '.join(REGULARIZERS)}, got '{name}'")
            hosted(cls.name, name).validate(cfg, nb_steps)

    @classmethod
    def resolve_settings(cls, cfg, shape, nb_steps):
        """``--budget-bytes N``: the depth, replay batches and stored steps whose learning state (replay memory,
        trained weights, optimiser state) fits N bytes. It keeps --latent-depth and --latent-batches and
        compresses in time (S = T, then T's divisors downwards, --compression's mode) until the state fits; then
        stores fewer batches; then cuts deeper. The memory is counted as it will be at the last task."""
        budget = cfg.options.get("budget_bytes")
        if budget is None:
            return []
        if budget < 1:
            raise ConfigError(f"--budget-bytes must be a positive number of bytes, got {budget}")
        if cfg.options.get("regularizer", "none") != "none":
            raise ConfigError("--budget-bytes counts the replay memory, the trained weights and their optimiser "
                              "state: it cannot size a regularizer's state (leave out --regularizer)")
        units = memory_units(cfg.scenario, shape, cfg.first_speakers, cfg.first_classes, cfg.classes_per_step)
        samples = units * cfg.batch_size  # per replay batch, by the last task
        per = value_bytes_of(cfg.precision) or FLOAT32_VALUE_BYTES
        mode, o = cfg.options["compression"], cfg.options
        net = (shape.nb_units, DEFAULT_HIDDEN_SIZES, shape.nb_classes)
        for depth in range(o["latent_depth"], 4):
            weights = trained_values(*net, depth) * (per["trained"] + per["optimizer"])
            width = DEFAULT_HIDDEN_SIZES[max(depth - 1, 0)]  # depth 0: layer 1's input currents
            for n in range(o["replay_batches"], 0, -1):
                for steps in reversed(divisors(nb_steps)):
                    memory = payload_bytes(kind_for_depth(depth), mode, n * samples, width, steps, nb_steps)
                    if memory + weights <= budget:
                        o.update(latent_depth=depth, replay_batches=n,
                                 stored_steps=None if steps == nb_steps else steps)
                        return [f"--budget-bytes {budget:,}: depth {depth}, {n} replay batch(es) ({n * samples} "
                                f"samples by the last task), S = {steps} of {nb_steps} ({mode}): learning state "
                                f"{memory + weights:,} B = replay memory {memory:,} + trained weights and "
                                f"optimiser {weights:,}"]
        smallest = payload_bytes("spikes", "or", samples, DEFAULT_HIDDEN_SIZES[2], 1, nb_steps) + trained_values(
            *net, 3) * (per["trained"] + per["optimizer"])
        raise ConfigError(f"--budget-bytes {budget:,}: nothing fits; the smallest learning state (depth 3, 1 replay "
                          f"batch, S = 1) needs {smallest:,} B")

    @classmethod
    def keeps(cls, cfg):
        name = cfg.options.get("regularizer", "none")
        return super().keeps(cfg) | (REGULARIZERS[name].keeps(cfg) if name != "none" else frozenset())

    @classmethod
    def label_parts(cls, cfg):
        name, budget = cfg.options.get("regularizer", "none"), cfg.options.get("budget_bytes")
        return super().label_parts(cfg) + ([] if name == "none" else [name]) + (
            [] if budget is None else [f"budget{budget}"])

    @classmethod
    def variants(cls):
        return (Variant("no_replay", "no replay", rank=2),
                Variant("latent_replay", "LR", rank=4, marker=("o", "tab:blue"), latent=True),
                Variant("compressed_latent_replay", "compressed LR", rank=5, marker=("^", "tab:green"), latent=True,
                        compresses="latent_replay"))

    @classmethod
    def variant_of(cls, replay_batches, stored_steps, nb_steps, options):
        """No memory: "no_replay"; fewer stored steps than time steps: "compressed_latent_replay"; else
        "latent_replay"; "+ewc" (etc.) with a regularizer on top."""
        regularizer = options.get("regularizer") or "none"
        extra = "" if regularizer == "none" else f"+{regularizer}"
        if replay_batches == 0:
            return "no_replay" + extra
        return ("compressed_latent_replay" if math.isfinite(stored_steps) and stored_steps < nb_steps
                else "latent_replay") + extra

    @classmethod
    def sweep_runs(cls, axes):
        """Every depth x memory size x stored steps x compression mode, the modes only for compressed runs (an
        uncompressed run takes the first)."""
        first = str(axes["compression"][0])
        return [argv for argv in super().sweep_runs(axes) if "--latent-subsample" in argv
                or "--compression" not in argv or argv[argv.index("--compression") + 1] == first]

    # ------------------------------------------------------------------------------------------ hosted hooks

    def start_task(self, i):
        super().start_task(i)
        if self.regularizer:
            self.regularizer.start_task(i)

    def epoch_batches(self, new):
        batches = super().epoch_batches(new)
        return self.regularizer.epoch_batches(batches) if self.regularizer else batches

    def extra_loss(self, batch, logits):
        return self.regularizer.extra_loss(batch, logits) if self.regularizer else None

    def edit_gradients(self):
        if self.regularizer:
            self.regularizer.edit_gradients()

    def after_step(self):
        if self.regularizer:
            self.regularizer.after_step()

    def end_task(self, i):
        super().end_task(i)
        if self.regularizer:
            self.regularizer.end_task(i)

    @property
    def memory_bits_analytic(self):
        return super().memory_bits_analytic + (self.regularizer.memory_bits_analytic if self.regularizer else 0)

    @property
    def memory_bytes_stored(self):
        return super().memory_bytes_stored + (self.regularizer.memory_bytes_stored if self.regularizer else 0)

    def describe_memory(self):
        text = super().describe_memory()
        return text + (f"; {self.regularizer.name}: {self.regularizer.describe_memory()}" if self.regularizer else "")

    @classmethod
    def cut_depth(cls, cfg):
        return cfg.options["latent_depth"]

    def store(self, index_batches):
        source = raw_batches(self.ctx.ds, index_batches, torch.device("cpu"))
        float_dtype = torch.float16 if self.option("float16_currents") else torch.float32
        net = self.ctx.net
        device = next(net.parameters()).device
        self.memory = build_latent_memory(net.cpu(), source, self.option("latent_depth"), self.stored_steps,
                                          self.option("compression"), float_dtype, memory=self.memory)
        net.to(device)
