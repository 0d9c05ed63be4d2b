"""Inputs for the kernel benchmarks, built once per session outside any timed call.

A 1,000-step stretch of real Pong (ALE/Pong-v5, random up/down actions, seed 0)
gives the frames, the difference frames and the hidden activations; the
policy is the seed's Xavier init with W1 (200, 6400) Fortran-ordered, as the
trainer keeps it, for both backends.
"""
import ast
import importlib
import os
import platform
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from fastpg import reference

N_STEPS = 1000
N_HIDDEN = 200
REPO_ROOT = Path(__file__).resolve().parent.parent


def play_pong(n_steps, seed=0):
    """n_steps + 1 uint8 (210, 160, 3) frames of ALE/Pong-v5 under random up/down actions."""
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make("ALE/Pong-v5")
    try:
        observation, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        frames = [observation]
        for _ in range(n_steps):
            observation, _, terminated, truncated, _ = env.step(int(rng.choice([2, 3])))
            frames.append(observation)
            if terminated or truncated:
                observation, _ = env.reset()
        return frames
    finally:
        env.close()


class PongEpisode:
    """A real 1,000-step episode and a policy, as float64 arrays both backends share."""

    def __init__(self, n_steps=N_STEPS, n_hidden=N_HIDDEN, seed=0):
        self.frames = play_pong(n_steps - 1, seed=seed)  # n_steps frames: one per recorded step
        processed = np.array([reference.preprocess(frame) for frame in self.frames])
        self.epx = np.zeros_like(processed)  # (T, 6400), C order; row 0 is the episode's first frame
        self.epx[1:] = processed[1:] - processed[:-1]
        rng = np.random.default_rng(seed)
        self.W1 = np.asfortranarray(rng.standard_normal((n_hidden, 6400)) / np.sqrt(6400))
        self.W2 = rng.standard_normal(n_hidden) / np.sqrt(n_hidden)
        self.eph = np.maximum(self.epx @ self.W1.T, 0.0)  # (T, H), C order
        self.epdlogp = rng.standard_normal(n_steps)  # stands in for dlogp * advantage
        self.uniforms = rng.random(n_steps)
        nnz = np.count_nonzero(self.epx, axis=1)
        # The forward benchmark's input: a typical difference frame (median non-zeros).
        self.typical_step = int(np.argmin(np.abs(nnz - np.median(nnz[1:]))))
        self.nnz = nnz


@pytest.fixture(scope="session")
def pong():
    return PongEpisode()


def setup_py_compile_args():
    """extra_compile_args as setup.py declares them (the literal list), or None."""
    try:
        tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    except OSError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "compile_args" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def version_of(module_name):
    try:
        return importlib.import_module(module_name).__version__
    except ImportError:
        return None


@pytest.fixture(scope="session")
def build_info():
    """What the numbers depend on: compiler and flags, versions, platform, BLAS threads."""
    from fastpg import _policy

    return {
        "cc": sysconfig.get_config_var("CC"),
        "python_cflags": sysconfig.get_config_var("CFLAGS"),
        "setup_py_compile_args": setup_py_compile_args(),
        "FASTPG_MARCH_NATIVE": os.environ.get("FASTPG_MARCH_NATIVE", ""),
        "FASTPG_DEBUG": os.environ.get("FASTPG_DEBUG", ""),
        "extension": os.path.basename(_policy.__file__),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cython": version_of("Cython"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
