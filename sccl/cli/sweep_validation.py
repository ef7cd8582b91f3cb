"""A sweep's checks before it launches anything (:mod:`sccl.cli.cl_sweep`; ``reproduce.py`` and :mod:`sccl.cli.tune` build
their sweeps through it): a bad value is one line and exit status 2, not a failed run per grid point.

* every ``--set`` value is read with its flag's own type and choices (:func:`check_set_values`);
* every ``--set`` reaches a run: its strategy is among the sweep's (:func:`check_sets_reach`), and a hosted
  strategy's flag set through its host (``latent_replay.ewc-lambda``) is used by at least one run, i.e. the host's
  ``--regularizer`` is swept to that strategy (:func:`check_swept_flags_used`);
* every run's command line is read by the very parser the run uses and its settings are checked by the rules the
  run applies, :func:`sccl.cl.engine.validate` and so the strategy's own ``validate`` (:func:`checked_run`).

The number of time steps the checks assume is :data:`sccl.data.hdf5.NB_STEPS`: a run always bins its data into that
many steps (``--max-time`` changes only the window), so no data file is needed to know it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sccl.cl.engine import validate
from sccl.cl.runs import RunConfig
from sccl.cl.strategies import REGISTRY, get_strategy
from sccl.cl.strategies.base import Flag
from sccl.cli.continual import build_parser, config_from_args
from sccl.core.errors import ConfigError
from sccl.data.hdf5 import NB_STEPS
from sccl.learn.training import data_shape


KINDS = {int: "a whole number", float: "a number", str: "a word"}


def set_text(strategy: str, flag: str, values) -> str:
    """A ``--set`` as the user writes it: ``ewc.ewc-lambda=1,10``."""
    return f"{strategy}.{flag[2:]}={','.join(values) if isinstance(values, (list, tuple)) else values}"


def check_set_values(text: str, flag: Flag, values: list[str]) -> None:
    """Each value of the ``--set`` ``text`` read as its flag's command line reads it, or one line naming both."""
    if flag.action:
        raise ConfigError(f"--set {text}: {flag.name} is an on/off switch without a value; --set cannot sweep it")
    for value in values:
        try:
            typed = flag.type(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--set {text}: {flag.name}: {exc}") from None
        except (TypeError, ValueError):
            kind = KINDS.get(flag.type, getattr(flag.type, "__name__", "a value"))
            raise ConfigError(f"--set {text}: {flag.name} takes {kind}, got '{value}'") from None
        if flag.choices and typed not in flag.choices:
            raise ConfigError(f"--set {text}: {flag.name} takes one of {', '.join(map(str, flag.choices))}, "
                              f"got '{value}'")


def _can_host(host: str, name: str) -> bool:
    """Whether strategy ``host`` can run strategy ``name`` on top of itself (its ``--regularizer``)."""
    regularizer = next((f for f in REGISTRY[host].all_flags() if f.dest == "regularizer"), None)
    return regularizer is not None and name in (regularizer.choices or ())


def check_sets_reach(sets: dict, strategies: list[str]) -> None:
    """Every ``--set`` names a strategy the sweep runs (``strategies``: the runs' strategy names); a set for another
    would be silently ignored."""
    for strategy, swept in sets.items():
        if strategy in strategies:
            continue
        flag, values = swept[0]
        hosts = [s for s in strategies if _can_host(s, strategy)]
        hint = (f"; for the {strategy} that {hosts[0]} hosts, use --set {set_text(hosts[0], flag, values)} with "
                f"--set {hosts[0]}.regularizer={strategy}") if hosts else ""
        raise ConfigError(f"--set {set_text(strategy, flag, values)}: {strategy} is not among the sweep's strategies "
                          f"({', '.join(strategies)}), so no run would use it{hint}")


def swept_settings(strategy: str, argv: list[str], sets: dict) -> list[tuple[str, str]]:
    """(flag, ``--set`` text with this run's value) of each flag the sets sweep in this run's ``argv``."""
    out = []
    for flag, _ in sets.get(strategy, []):
        value = argv[len(argv) - argv[::-1].index(flag)]  # the value after the flag's last occurrence
        out.append((flag, set_text(strategy, flag, value)))
    return out


def _in_run(message: str, swept: list[tuple[str, str]]) -> str:
    """``message`` with the ``--set`` values it names as its prefix, else the run's swept values as context."""
    named = [text for flag, text in swept if flag in message]
    if named:
        return "--set " + ", --set ".join(named) + ": " + message
    if swept:
        return f"{message} (in the run with --set " + ", --set ".join(text for _, text in swept) + ")"
    return message


def checked_run(strategy: str, scenario: str, argv: list[str], swept: list[tuple[str, str]],
                data_file=None) -> tuple[RunConfig, set[str]]:
    """(settings, names of the strategy flags it uses) of one run's command line, read by the run's own parser and
    checked by the run's own rules; any problem is one :class:`ConfigError` line naming the ``--set`` behind it.
    With the ``data_file`` there, the settings the strategy derives from the data are derived as the run will."""
    parser = build_parser(strategy, scenario)

    def refuse(message: str):  # argparse reports a bad command line through error(), which would print and exit
        raise ConfigError(f"the run's command line: {message}")

    parser.error = refuse
    try:
        args = parser.parse_args(argv)
        cfg = config_from_args(args, strategy, scenario)
        if data_file is not None and Path(data_file).is_file():
            get_strategy(strategy).resolve_settings(cfg, data_shape(data_file), NB_STEPS)
        validate(cfg, NB_STEPS)
    except ConfigError as exc:
        raise ConfigError(_in_run(str(exc), swept)) from None
    return cfg, {f.name for f in get_strategy(strategy).used_flags(vars(args))}


def check_swept_flags_used(sets: dict, used: dict[str, set[str]]) -> None:
    """Every swept flag is used by at least one run of its strategy (``used``: strategy -> the flags its runs use);
    a hosted strategy's flag is used only where the host's ``--regularizer`` is that strategy."""
    for strategy, swept in sets.items():
        for flag, values in swept:
            if flag in used.get(strategy, set()):
                continue
            owners = [n for n in REGISTRY if n != strategy and _can_host(strategy, n)
                      and flag in {f.name for f in REGISTRY[n].flags}]
            hint = (f" (a flag of {' or '.join(owners)}, used only with --set {strategy}.regularizer="
                    f"{' or '.join(owners)})") if owners else ""
            raise ConfigError(f"--set {set_text(strategy, flag, values)}: no {strategy} run of this sweep uses "
                              f"{flag}{hint}")
