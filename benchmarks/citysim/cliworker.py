"""Run many ``barri`` commands in one Python process: ``federation.cli.main`` per command.

The setup of a big city is thousands of admin commands (an account, its verification and a
token per resident); starting an interpreter for each would take longer than the run. Reads
``[{"argv": [...], "stdin": "..."}]`` as JSON on stdin, runs each as ``barri ARGV`` would,
and prints the list of their standard outputs as JSON. Stops at the first failing command.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from federation.cli import main


def run_all(commands: list[dict[str, object]]) -> list[str]:
    """Each command's standard output; SystemExit with its error on the first failure."""
    outputs = []
    for command in commands:
        argv = [str(a) for a in command["argv"]]  # type: ignore[attr-defined]
        sys.stdin = io.StringIO(str(command.get("stdin") or ""))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        if code != 0:
            raise SystemExit(f"barri {' '.join(argv[:4])}: {err.getvalue().strip()}")
        outputs.append(out.getvalue())
    return outputs


if __name__ == "__main__":
    print(json.dumps(run_all(json.load(sys.stdin))))
