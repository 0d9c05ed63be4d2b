"""Bad input gives a clear ValueError/TypeError naming the argument, never a crash.

Every bad call runs in a child Python process, since a missing check in the
compiled code could read out of bounds and kill the interpreter. A case that
kills the child fails (as "killed by signal ...") instead of the whole run; the
remaining cases then run in a fresh child.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastpg
from fastpg import kernels, reference

SETUP = """
import numpy as np
from fastpg import kernels, reference

H = 4
frame = np.zeros((210, 160, 3), np.uint8)
W1 = np.zeros((H, 6400), order="F")
W2 = np.zeros(H)
x = np.zeros(6400)
eph = np.zeros((3, H))
epdlogp = np.zeros(3)
epx = np.zeros((3, 6400))

def read_only(arr):
    arr = arr.copy(order="K")
    arr.setflags(write=False)
    return arr

def rmsprop(B, **changes):
    args = dict(w=np.zeros((H, 6400)), g=np.zeros((H, 6400)), cache=np.zeros((H, 6400)),
                learning_rate=1e-4, decay_rate=0.99)
    args.update(changes)
    B.rmsprop_update(**args)

def stepper_step(bad_frame):
    stepper = kernels.PolicyStepper(W1, W2)
    stepper.step(frame, 0.5)
    stepper.step(bad_frame, 0.5)

def sparse_backward(**changes):
    args = dict(W1=W1, W2=W2, indices=np.array([1, 2, 3], np.int16),
                signs=np.array([1, -1, 1], np.int8), offsets=np.array([0, 2, 3], np.int32),
                weighted_dlogp=np.ones(2), dW1=np.zeros((H, 6400), order="F"), dW2=np.zeros(H))
    args.update(changes)
    kernels.sparse_backward(*args.values())
"""

# (case id, code with B for the backend, exception type, regex the message must match)
SHARED_CASES = [
    # preprocess
    ("preprocess-2d", "B.preprocess(frame[:, :, 0])", ValueError, r"\bframe\b"),
    ("preprocess-transposed", "B.preprocess(np.zeros((160, 210, 3), np.uint8))", ValueError, r"\bframe\b"),
    ("preprocess-too-small", "B.preprocess(np.zeros((10, 10, 3), np.uint8))", ValueError, r"\bframe\b"),
    ("preprocess-4-channels", "B.preprocess(np.zeros((210, 160, 4), np.uint8))", ValueError, r"\bframe\b"),
    ("preprocess-float", "B.preprocess(frame.astype(np.float64))", TypeError, r"\bframe\b.*uint8"),
    ("preprocess-int8", "B.preprocess(frame.astype(np.int8))", TypeError, r"\bframe\b.*uint8"),
    ("preprocess-list", "B.preprocess(frame.tolist())", TypeError, r"\bframe\b"),
    ("preprocess-none", "B.preprocess(None)", TypeError, r"\bframe\b"),
    # discount_rewards
    ("discount-2d", "B.discount_rewards(np.zeros((3, 2)), 0.99)", ValueError, r"\brewards\b"),
    ("discount-complex", "B.discount_rewards(np.zeros(3, complex), 0.99)", TypeError, r"\brewards\b"),
    ("discount-strings", "B.discount_rewards(np.array(['a', 'b']), 0.99)", TypeError, r"\brewards\b"),
    ("discount-list", "B.discount_rewards([0.0, 1.0], 0.99)", TypeError, r"\brewards\b"),
    ("discount-gamma-high", "B.discount_rewards(np.zeros(3), 1.5)", ValueError, r"\bgamma\b"),
    ("discount-gamma-negative", "B.discount_rewards(np.zeros(3), -0.1)", ValueError, r"\bgamma\b"),
    ("discount-gamma-nan", "B.discount_rewards(np.zeros(3), float('nan'))", ValueError, r"\bgamma\b"),
    # policy_forward
    ("forward-W1-columns", "B.policy_forward(np.zeros((H, 6399)), W2, x)", ValueError, r"\bW1\b.*6400"),
    ("forward-W1-1d", "B.policy_forward(np.zeros(6400), W2, x)", ValueError, r"\bW1\b"),
    ("forward-W1-float32", "B.policy_forward(W1.astype(np.float32), W2, x)", TypeError, r"\bW1\b.*float64"),
    ("forward-W1-no-rows", "B.policy_forward(np.zeros((0, 6400)), np.zeros(0), x)", ValueError, r"\bW1\b"),
    ("forward-W1-list", "B.policy_forward(W1.tolist(), W2, x)", TypeError, r"\bW1\b"),
    ("forward-W2-short", "B.policy_forward(W1, np.zeros(H - 1), x)", ValueError, r"\bW2\b"),
    ("forward-W2-long", "B.policy_forward(W1, np.zeros(H + 1), x)", ValueError, r"\bW2\b"),
    ("forward-W2-int", "B.policy_forward(W1, np.zeros(H, np.int64), x)", TypeError, r"\bW2\b"),
    ("forward-x-short", "B.policy_forward(W1, W2, np.zeros(6399))", ValueError, r"\bx\b"),
    ("forward-x-2d", "B.policy_forward(W1, W2, np.zeros((1, 6400)))", ValueError, r"\bx\b"),
    ("forward-x-float32", "B.policy_forward(W1, W2, x.astype(np.float32))", TypeError, r"\bx\b"),
    # policy_backward
    ("backward-W2-2d", "B.policy_backward(np.zeros((H, 1)), eph, epdlogp, epx)", ValueError, r"\bW2\b"),
    ("backward-eph-hidden", "B.policy_backward(W2, np.zeros((3, H + 1)), epdlogp, epx)", ValueError, r"\beph\b"),
    ("backward-eph-1d", "B.policy_backward(W2, np.zeros(3), epdlogp, epx)", ValueError, r"\beph\b"),
    ("backward-eph-int", "B.policy_backward(W2, eph.astype(np.int64), epdlogp, epx)", TypeError, r"\beph\b"),
    ("backward-epdlogp-short", "B.policy_backward(W2, eph, np.zeros(2), epx)", ValueError, r"\bepdlogp\b"),
    ("backward-epdlogp-long", "B.policy_backward(W2, eph, np.zeros(4), epx)", ValueError, r"\bepdlogp\b"),
    ("backward-epx-steps", "B.policy_backward(W2, eph, epdlogp, np.zeros((2, 6400)))", ValueError, r"\bepx\b"),
    ("backward-epx-pixels", "B.policy_backward(W2, eph, epdlogp, np.zeros((3, 6399)))", ValueError, r"\bepx\b"),
    ("backward-epx-float32", "B.policy_backward(W2, eph, epdlogp, epx.astype(np.float32))", TypeError, r"\bepx\b"),
    # rmsprop_update
    ("rmsprop-g-shape", "rmsprop(B, g=np.zeros((H, 6399)))", ValueError, r"\bg\b"),
    ("rmsprop-g-size", "rmsprop(B, g=np.zeros(H * 6400))", ValueError, r"\bg\b"),
    ("rmsprop-cache-shape", "rmsprop(B, cache=np.zeros((H + 1, 6400)))", ValueError, r"\bcache\b"),
    ("rmsprop-w-float32", "rmsprop(B, w=np.zeros((H, 6400), np.float32))", TypeError, r"\bw\b"),
    ("rmsprop-g-float32", "rmsprop(B, g=np.zeros((H, 6400), np.float32))", TypeError, r"\bg\b"),
    ("rmsprop-w-list", "rmsprop(B, w=[0.0])", TypeError, r"\bw\b"),
    ("rmsprop-w-read-only", "rmsprop(B, w=read_only(np.zeros((H, 6400))))", ValueError, r"\bw\b.*read-only"),
    ("rmsprop-cache-read-only", "rmsprop(B, cache=read_only(np.zeros((H, 6400))))", ValueError, r"\bcache\b.*read-only"),
    ("rmsprop-decay-high", "rmsprop(B, decay_rate=1.5)", ValueError, r"\bdecay_rate\b"),
    ("rmsprop-eps-zero", "rmsprop(B, eps=0.0)", ValueError, r"\beps\b"),
]

COMPILED_CASES = [
    # Layout: numpy copes with any strides; the compiled side asks for contiguity by name.
    ("preprocess-non-contiguous", "kernels.preprocess(np.zeros((210, 160, 6), np.uint8)[:, :, ::2])", ValueError, r"\bframe\b.*contiguous"),
    ("forward-x-non-contiguous", "kernels.policy_forward(W1, W2, np.zeros(12800)[::2])", ValueError, r"\bx\b.*contiguous"),
    ("forward-W2-non-contiguous", "kernels.policy_forward(W1, np.zeros(2 * H)[::2], x)", ValueError, r"\bW2\b.*contiguous"),
    ("backward-epx-fortran", "kernels.policy_backward(W2, eph, epdlogp, np.asfortranarray(epx))", ValueError, r"\bepx\b.*contiguous"),
    ("backward-eph-non-contiguous", "kernels.policy_backward(W2, np.zeros((3, 2 * H))[:, ::2], epdlogp, epx)", ValueError, r"\beph\b.*contiguous"),
    ("rmsprop-w-non-contiguous", "rmsprop(kernels, w=np.zeros((H, 12800))[:, ::2])", ValueError, r"\bw\b.*contiguous"),
    ("rmsprop-g-other-order", "rmsprop(kernels, g=np.zeros((H, 6400), order='F'))", ValueError, r"\bg\b.*contiguous"),
    ("rmsprop-cache-non-contiguous", "rmsprop(kernels, cache=np.zeros((H, 12800))[:, ::2])", ValueError, r"\bcache\b.*contiguous"),
    # PolicyStepper
    ("stepper-W1-columns", "kernels.PolicyStepper(np.zeros((H, 6399)), W2)", ValueError, r"\bW1\b"),
    ("stepper-W1-float32", "kernels.PolicyStepper(W1.astype(np.float32), W2)", TypeError, r"\bW1\b"),
    ("stepper-W2-short", "kernels.PolicyStepper(W1, np.zeros(H - 1))", ValueError, r"\bW2\b"),
    ("stepper-W2-non-contiguous", "kernels.PolicyStepper(W1, np.zeros(2 * H)[::2])", ValueError, r"\bW2\b"),
    ("step-frame-too-small", "stepper_step(np.zeros((10, 10, 3), np.uint8))", ValueError, r"\bframe\b"),
    ("step-frame-float", "stepper_step(frame.astype(np.float64))", TypeError, r"\bframe\b.*uint8"),
    ("step-frame-non-contiguous", "stepper_step(np.zeros((210, 160, 6), np.uint8)[:, :, ::2])", ValueError, r"\bframe\b.*contiguous"),
    ("step-frame-fortran", "stepper_step(np.asfortranarray(frame))", ValueError, r"\bframe\b.*contiguous"),
    ("step-frame-list", "stepper_step(frame.tolist())", TypeError, r"\bframe\b"),
    # sparse_backward
    ("sparse-W1-W2-mismatch", "sparse_backward(W1=np.zeros((H + 1, 6400)))", ValueError, r"\bW2\b"),
    ("sparse-indices-int32", "sparse_backward(indices=np.array([1, 2, 3], np.int32))", TypeError, r"\bindices\b.*int16"),
    ("sparse-indices-too-large", "sparse_backward(indices=np.array([1, 2, 6400], np.int16))", ValueError, r"\bindices\b"),
    ("sparse-indices-negative", "sparse_backward(indices=np.array([1, -1, 3], np.int16))", ValueError, r"\bindices\b"),
    ("sparse-indices-non-contiguous", "sparse_backward(indices=np.array([1, 0, 2, 0, 3, 0], np.int16)[::2])", ValueError, r"\bindices\b"),
    ("sparse-signs-length", "sparse_backward(signs=np.array([1, -1], np.int8))", ValueError, r"\bsigns\b"),
    ("sparse-signs-float", "sparse_backward(signs=np.array([1.0, -1.0, 1.0]))", TypeError, r"\bsigns\b.*int8"),
    ("sparse-offsets-start", "sparse_backward(offsets=np.array([1, 2, 3], np.int32))", ValueError, r"\boffsets\b"),
    ("sparse-offsets-end-short", "sparse_backward(offsets=np.array([0, 2, 2], np.int32))", ValueError, r"\boffsets\b"),
    ("sparse-offsets-end-long", "sparse_backward(offsets=np.array([0, 2, 400], np.int32), weighted_dlogp=np.ones(2))", ValueError, r"\boffsets\b"),
    ("sparse-offsets-decreasing", "sparse_backward(offsets=np.array([0, 400, 3], np.int32))", ValueError, r"\boffsets\b"),
    ("sparse-offsets-empty", "sparse_backward(offsets=np.zeros(0, np.int32), weighted_dlogp=np.ones(0))", ValueError, r"\boffsets\b"),
    ("sparse-offsets-int64", "sparse_backward(offsets=np.array([0, 2, 3]))", TypeError, r"\boffsets\b.*int32"),
    ("sparse-weighted-length", "sparse_backward(weighted_dlogp=np.ones(3))", ValueError, r"\bweighted_dlogp\b"),
    ("sparse-weighted-non-contiguous", "sparse_backward(weighted_dlogp=np.ones(4)[::2])", ValueError, r"\bweighted_dlogp\b"),
    ("sparse-dW1-pixels", "sparse_backward(dW1=np.zeros((H, 6399)))", ValueError, r"\bdW1\b"),
    ("sparse-dW1-hidden", "sparse_backward(dW1=np.zeros((H + 1, 6400)))", ValueError, r"\bdW1\b"),
    ("sparse-dW1-float32", "sparse_backward(dW1=np.zeros((H, 6400), np.float32))", TypeError, r"\bdW1\b"),
    ("sparse-dW1-read-only", "sparse_backward(dW1=read_only(np.zeros((H, 6400))))", ValueError, r"\bdW1\b.*read-only"),
    ("sparse-dW2-read-only", "sparse_backward(dW2=read_only(np.zeros(H)))", ValueError, r"\bdW2\b.*read-only"),
    ("sparse-dW2-length", "sparse_backward(dW2=np.zeros(H - 1))", ValueError, r"\bdW2\b"),
]

CASES = {
    f"{backend}:{name}": (code.replace("B.", f"{backend}.").replace("(B,", f"({backend},"), error, pattern)
    for backend in ("reference", "kernels")
    for name, code, error, pattern in SHARED_CASES
}
CASES.update({f"kernels:{name}": (code, error, pattern) for name, code, error, pattern in COMPILED_CASES})

CHILD = """
import json, sys
request = json.load(sys.stdin)
exec(request["setup"])
for name, code in request["cases"]:
    print(json.dumps({"started": name}), flush=True)
    try:
        exec(code)
        outcome = {"finished": name, "error": None, "message": ""}
    except Exception as exc:
        outcome = {"finished": name, "error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(outcome), flush=True)
"""


def run_in_children(cases):
    """Run {name: code} in child interpreters; returns {name: outcome dict}.

    A case that kills its child is recorded with the signal (or exit status),
    and the cases after it run in a new child.
    """
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastpg.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    results, pending = {}, list(cases.items())
    while pending:
        request = json.dumps({"setup": SETUP, "cases": pending})
        # cwd = package_root: `python -c` puts the cwd first on sys.path, and the child must
        # import the same fastpg as this process (not a source tree without the extensions).
        child = subprocess.run([sys.executable, "-c", CHILD], input=request, env=env, cwd=package_root,
                               capture_output=True, text=True, timeout=120)
        started = None
        for line in child.stdout.splitlines():
            record = json.loads(line)
            if "started" in record:
                started = record["started"]
            else:
                results[record["finished"]] = record
                started = None
        if started is None and child.returncode != 0:  # died outside any case (setup, import)
            raise AssertionError(f"child failed (status {child.returncode}):\n{child.stderr}")
        if started is not None:
            status = child.returncode
            how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            results[started] = {"finished": started, "crashed": how, "stderr": child.stderr[-2000:]}
        pending = [(name, code) for name, code in pending if name not in results]
    return results


@pytest.fixture(scope="module")
def outcomes():
    return run_in_children({name: code for name, (code, _, _) in CASES.items()})


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_an_error_naming_the_argument(case, outcomes):
    _, expected_error, pattern = CASES[case]
    outcome = outcomes[case]
    assert "crashed" not in outcome, f"{case}: the interpreter {outcome['crashed']}\n{outcome['stderr']}"
    assert outcome["error"] == expected_error.__name__, (
        f"{case}: expected {expected_error.__name__}, got {outcome['error']}: {outcome['message']}")
    assert re.search(pattern, outcome["message"]), f"{case}: message {outcome['message']!r} !~ {pattern!r}"


def test_child_runner_reports_a_crash_as_a_failure():
    # The harness itself: a case that kills the interpreter is caught, and later cases still run.
    results = run_in_children({
        "segfault": "import ctypes; ctypes.string_at(0)",
        "after": "raise ValueError('still running')",
    })
    assert "signal" in results["segfault"]["crashed"]
    assert results["after"]["error"] == "ValueError"


# In-process checks that a rejected call changed nothing (safe once the cases above pass).

@pytest.mark.parametrize("backend", [reference, kernels], ids=["reference", "compiled"])
def test_rejected_rmsprop_changes_nothing(backend):
    w, cache = np.ones((4, 6400)), np.ones((4, 6400))
    with pytest.raises(ValueError, match="decay_rate"):
        backend.rmsprop_update(w, np.ones((4, 6400)), cache, 1e-2, 1.5)
    with pytest.raises(ValueError, match=r"\bg\b"):
        backend.rmsprop_update(w, np.ones((4, 6399)), cache, 1e-2, 0.9)
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(cache, 1.0)


def test_rejected_sparse_backward_changes_nothing():
    W1, W2 = np.ones((4, 6400), order="F"), np.ones(4)
    dW1, dW2 = np.zeros((4, 6400), order="F"), np.zeros(4)
    indices, signs = np.array([1, 2, 3], np.int16), np.array([1, -1, 1], np.int8)
    with pytest.raises(ValueError, match="offsets"):
        kernels.sparse_backward(W1, W2, indices, signs, np.array([0, 2, 2], np.int32), np.ones(2), dW1, dW2)
    with pytest.raises(ValueError, match="dW2"):
        kernels.sparse_backward(W1, W2, indices, signs, np.array([0, 2, 3], np.int32), np.ones(2), dW1, dW2[:3])
    assert not dW1.any() and not dW2.any()


def test_stepper_keeps_working_after_a_rejected_frame():
    W1, W2 = np.ones((4, 6400), order="F"), np.ones(4)
    stepper = kernels.PolicyStepper(W1, W2)
    frame = np.zeros((210, 160, 3), np.uint8)
    stepper.step(frame, 0.5)
    with pytest.raises((TypeError, ValueError), match="frame"):
        stepper.step(frame.astype(np.float64), 0.5)
    assert stepper.n_steps == 1  # the bad frame was not recorded
    stepper.step(frame, 0.5)
    assert stepper.n_steps == 2
