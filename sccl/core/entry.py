"""Shared command-line plumbing: one clear error line and exit status 2 instead of a traceback."""

import sys
from collections.abc import Callable

from sccl.core.disk import ADVICE
from sccl.core.errors import SCCLError


EXIT_USER_ERROR = 2


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; report an :class:`SCCLError` as ``error: ...`` and return 2. A file-system error
    that no writer turned into one (a full disk, a read-only folder met while appending to a log) is reported the
    same way."""
    try:
        main(argv)
    except SCCLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.errno not in ADVICE:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror}; {ADVICE[exc.errno]}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
