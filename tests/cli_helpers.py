"""Running the real `fastpg` command line from tests (imported by name; conftest puts tests/ on sys.path)."""
import os
import subprocess
import sys


def cli_env():
    """os.environ for the CLI, with relative PYTHONPATH entries made absolute (it runs elsewhere)."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


def fastpg_command(*args):
    return [sys.executable, "-m", "fastpg", *map(str, args)]


def run_fastpg(*args, cwd, timeout=180):
    """Run `python -m fastpg ARGS` in a fresh interpreter in cwd; returns the CompletedProcess (text).

    Not in the repository root: `python -m` puts the cwd first on sys.path, and
    the child must import the fastpg that this suite imports (the installed one,
    or the source tree on an absolute PYTHONPATH), not the unbuilt ./fastpg.
    """
    return subprocess.run(fastpg_command(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)
