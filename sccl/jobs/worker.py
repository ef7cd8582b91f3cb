"""A persistent worker that runs the sweep's Python commands one after another in one process.

Starting Python with torch costs 3-4 s of CPU per process on a small machine, as much as a short run itself, so
``sccl.jobs.sweep.run_jobs`` keeps one worker per parallel slot instead of one process per run. A run inside a worker
is exactly the command it replaces (``python script.py ARGS`` or ``python -m module ARGS``, executed with that
``sys.argv``): every run seeds itself and sets its threads, so its results do not depend on what ran before in the
same process (the golden-results test runs the scripts this way).

Protocol: one JSON line per command on stdin, ``{"argv": [...]}`` (``argv[0]`` the interpreter, ignored); one JSON
line per command on stdout, ``{"code": exit status, "tail": last lines of its output}``. The run's own output goes
to the file named in the request's ``"log"`` (or nowhere).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback


def run_command(argv: list[str], out) -> int:
    """Run ``argv`` (``[python, script, ...]`` or ``[python, "-m", module, ...]``) here; returns its exit status."""
    args = argv[1:]
    saved_argv, saved_path = sys.argv, list(sys.path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                if args[0] == "-m":
                    sys.argv = [args[1]] + args[2:]
                    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = args
                    runpy.run_path(args[0], run_name="__main__")
            except SystemExit as exc:
                code = exc.code
                if code is None:
                    return 0
                if isinstance(code, int):
                    return code
                print(code, file=out)
                return 1
            except BaseException:  # a crash of one run is that run's failure, not the worker's
                traceback.print_exc(file=out)
                return 1
            return 0
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def main() -> None:
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray C-level output must not reach the reply pipe
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        buffer = io.StringIO()
        code = run_command(request["argv"], buffer)
        text = buffer.getvalue()
        if request.get("log"):
            with open(request["log"], "a") as fh:
                fh.write(text)
        reply.write(json.dumps({"code": code, "tail": text.strip().splitlines()[-3:]}) + "\n")


if __name__ == "__main__":
    main()
