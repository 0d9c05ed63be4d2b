"""Fail the suite when the compiled kernels are missing: never test numpy against numpy."""
import importlib
import importlib.machinery
import os
import subprocess
import sys
import types

import pytest

import fastpg
from fastpg import kernels, reference

EXTENSION_MODULES = ["_preprocess", "_policy", "_returns", "_rmsprop", "_rollout"]
SHARED_API = ["preprocess", "discount_rewards", "policy_forward", "policy_backward", "rmsprop_update", "gae"]


@pytest.mark.parametrize("name", EXTENSION_MODULES)
def test_extension_module_is_compiled(name):
    module = importlib.import_module(f"fastpg.{name}")
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module.__file__
    assert isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader)


@pytest.mark.parametrize("name", SHARED_API + ["PolicyStepper", "sparse_backward"])
def test_kernels_api_comes_from_extension_modules(name):
    obj = getattr(kernels, name)
    module = sys.modules[obj.__module__]
    assert obj.__module__.startswith("fastpg._"), obj.__module__
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module.__file__
    assert not isinstance(obj, types.FunctionType)  # a Python function would be numpy code
    if name in SHARED_API:
        assert obj is not getattr(reference, name)


def test_missing_extension_fails_the_import_loudly():
    # Hide one compiled module: importing fastpg.kernels must raise, not fall back to numpy.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fastpg._rollout':\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import fastpg.kernels\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
        "else:\n"
        "    print('imported without the extension')\n"
    )
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastpg.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=package_root, timeout=60)  # the cwd goes first on the child's sys.path
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("ImportError:"), child.stdout
    assert "not built" in child.stdout
