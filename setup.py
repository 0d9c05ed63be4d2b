"""Build the Cython kernels.

Environment variables:
  FASTPG_DEBUG=1          keep Cython's bounds/wraparound checks on (debug build).
  FASTPG_MARCH_NATIVE=1   add -march=native (not portable: the binary may crash
                          with SIGILL on another CPU).
  FASTPG_NO_OPENMP=1      build the learner kernels without OpenMP (one thread).
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTPG_DEBUG", "") not in ("", "0")
MARCH_NATIVE = os.environ.get("FASTPG_MARCH_NATIVE", "") not in ("", "0")
NO_OPENMP = os.environ.get("FASTPG_NO_OPENMP", "") not in ("", "0")

# -fno-math-errno lets sqrt vectorise (nothing here reads errno); unlike
# -ffast-math it changes no floating-point result. -ffp-contract=off keeps
# a * b + c two roundings on CPUs with fused multiply-add, so every machine
# (and every clone in wide_loops.h) computes the same bits. -fno-strict-aliasing
# makes the bit-level zero test in fastpg_common.pxd well defined.
compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fno-strict-aliasing"]
if MARCH_NATIVE:
    compile_args.append("-march=native")

KERNELS = ["_preprocess", "_policy", "_returns", "_gae", "_rmsprop", "_rollout", "_actor"]

# The actor-critic's learner kernels split their work between OpenMP threads (bit-identical results for
# any count); where the compiler has no OpenMP (FASTPG_NO_OPENMP=1 to choose that), they run in one.
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") and not NO_OPENMP else []
THREADED = {"_actor"}

extensions = [
    Extension(f"fastpg.{name}", [f"src/{name}.pyx"], include_dirs=["src"],
              depends=["src/wide_loops.h"],  # a C header: Cython does not track it, so a change rebuilds all
              extra_compile_args=compile_args + (OPENMP if name in THREADED else []),
              extra_link_args=OPENMP if name in THREADED else [])
    for name in KERNELS
]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
}

setup(
    ext_modules=cythonize(
        extensions, compiler_directives=directives, include_path=["src"]
    ),
)
