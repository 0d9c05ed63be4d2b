"""The two interchangeable implementations the driver runs on.

``cython`` uses the compiled kernels: a fused per-step call and a sparse
backward. ``numpy`` plays and learns with :mod:`fastpg.reference`, through the
same driver, as the baseline. Both record episodes in the same sparse format
(see :class:`fastpg.kernels.PolicyStepper`), so a run's result does not depend
on the backend beyond float rounding.
"""
import functools

import numpy as np

from . import _validate, reference
from .constants import DOWN, N_PIXELS, PONG_FIRST_ROW, UP

BACKWARD_CHUNK = 256  # steps densified at a time by the numpy backward


class NumpyStepper:
    """The reference twin of kernels.PolicyStepper: same interface and arguments, same episode format.

    ``p`` is P(actions[0]) and ``nnz`` the number of non-zero pixels of the last step's difference frame.
    """

    def __init__(self, W1, W2, actions=(UP, DOWN), foreground=None, first_row=PONG_FIRST_ROW):
        self.W1, self.W2 = W1, W2
        self.actions = _validate.action_pair(actions)
        self.first_row, foreground = reference.frame_rule(first_row, foreground)
        self._foreground = foreground.copy()  # as the compiled stepper: later changes to the caller's table do not count
        self.p = 0.0
        self.nnz = 0
        self.reset()

    def reset(self):
        self._previous = None
        self._indices, self._signs, self._dlogp = [], [], []

    @property
    def n_steps(self):
        return len(self._dlogp)

    def step(self, frame, u):
        current = reference.preprocess(frame, self.first_row, self._foreground)
        x = np.zeros(N_PIXELS) if self._previous is None else current - self._previous
        self._previous = current
        p, _ = reference.policy_forward(self.W1, self.W2, x)
        nonzero = np.flatnonzero(x)
        self.p, self.nnz = p, len(nonzero)
        self._indices.append(nonzero.astype(np.int16))
        self._signs.append(x[nonzero].astype(np.int8))
        self._dlogp.append((1.0 if u < p else 0.0) - p)
        return self.actions[0] if u < p else self.actions[1]

    def finish(self):
        episode = dict(sparse_rows(self._indices, self._signs), dlogp=np.array(self._dlogp, dtype=np.float64))
        self.reset()
        return episode


def sparse_rows(indices, signs):
    """The sparse record's indices, signs and offsets from one int16 index array and one int8 sign array
    per row, as the compiled steppers lay them out."""
    return {"indices": np.concatenate(indices or [np.empty(0, np.int16)]),
            "signs": np.concatenate(signs or [np.empty(0, np.int8)]),
            "offsets": np.concatenate([[0], np.cumsum([len(i) for i in indices])]).astype(np.int32)}


def densify(episode, start, stop, n_inputs=N_PIXELS):
    """Steps start:stop of a sparse episode as a dense float64 (stop - start, n_inputs) array."""
    offsets = episode["offsets"]
    x = np.zeros((stop - start, n_inputs))
    for row, t in enumerate(range(start, stop)):
        entries = slice(offsets[t], offsets[t + 1])
        x[row, episode["indices"][entries]] = episode["signs"][entries]
    return x


def numpy_sparse_backward(W1, W2, indices, signs, offsets, weighted_dlogp, dW1, dW2):
    """kernels.sparse_backward's twin: reference.policy_backward on dense chunks, summed."""
    episode = {"indices": indices, "signs": signs, "offsets": offsets}
    n_steps = len(offsets) - 1
    for start in range(0, n_steps, BACKWARD_CHUNK):
        stop = min(start + BACKWARD_CHUNK, n_steps)
        epx = densify(episode, start, stop)
        eph = np.maximum(epx @ W1.T, 0.0)  # the reference forward's h, for all steps at once
        chunk_dW1, chunk_dW2 = reference.policy_backward(W2, eph, weighted_dlogp[start:stop], epx)
        dW1 += chunk_dW1
        dW2 += chunk_dW2


class NumpyActorStepper:
    """The reference twin of kernels.ActorStepper: same interface and arguments, same record."""

    def __init__(self, params, actions, lut, fill_lut, first_row=PONG_FIRST_ROW):
        self.params = params
        self.with_frame = params["W1"].shape[1] == 2 * N_PIXELS  # the input is the difference, then the frame
        self.first_row = _validate.first_row(first_row)
        self.actions = np.asarray(actions, dtype=np.int32)
        self.lut, self.fill_lut = lut, fill_lut
        self.probs = np.zeros(len(self.actions))
        self.nnz = self.choice = 0
        self.reset()

    @property
    def p(self):
        return self.probs[0]

    @property
    def n_steps(self):
        return sum(1 for c in self._choices if c != 255)

    def reset(self):
        self._previous = None
        self._chained = False  # as the compiled stepper's: may the next row leave out its frame
        self._indices, self._signs, self._choices, self._logps, self._keyframes = [], [], [], [], []

    def new_episode(self):
        self._previous = None
        self._chained = False

    @property
    def previous(self):
        return None if self._previous is None else self._previous.astype(np.uint8)

    @previous.setter
    def previous(self, frame):
        self._chained = False
        if frame is None:
            self._previous = None
            return
        frame = np.asarray(frame)
        if frame.shape != (N_PIXELS,) or frame.max(initial=0) > 1:
            raise ValueError(f"previous must be a (6400,) array of 0/1, got shape {frame.shape}")
        self._previous = frame.astype(np.float64)

    def _read(self, screen):
        try:
            return reference.preprocess_palette(screen, self.lut, self.first_row)
        except ValueError as exc:
            if "no entry" not in str(exc):
                raise
        self.fill_lut()
        try:
            return reference.preprocess_palette(screen, self.lut, self.first_row)
        except ValueError:
            raise ValueError("the screen shows a colour that fill_lut() did not add to the lut") from None

    def _record(self, current, choice):
        x = reference.actor_input(current, self._previous, self.with_frame)
        nonzero = np.flatnonzero(x)
        self.nnz = len(nonzero)
        self._keyframes.append(not self._chained)
        if self.with_frame and self._chained:  # the compact record (reference.expand_frame_record)
            nonzero = nonzero[nonzero < N_PIXELS]
        self._indices.append(nonzero.astype(np.int16))
        self._signs.append(x[nonzero].astype(np.int8))
        self._choices.append(choice)
        self._logps.append(np.nan)
        self._chained = choice != 255
        return x

    def step(self, screen, u):
        current = self._read(screen)
        x = self._record(current, 0)
        self._previous = current
        logits, _, _ = reference.actor_critic_forward(self.params, x[None, :])
        self._logp = reference.log_softmax(logits)[0]
        self.probs = np.exp(self._logp)
        below = np.flatnonzero(u < np.cumsum(self.probs))
        self.choice = int(below[0]) if len(below) else len(self.probs) - 1
        self._choices[-1] = self.choice
        self._logps[-1] = self._logp[self.choice]
        return int(self.actions[self.choice])

    def greedy(self):
        if not self._choices or self._choices[-1] == 255:
            raise ValueError("greedy() replaces the last step's choice: call it right after step()")
        self.choice = int(np.argmax(self.probs))
        self._choices[-1] = self.choice
        self._logps[-1] = self._logp[self.choice]
        return int(self.actions[self.choice])

    def peek(self, screen):
        self._record(self._read(screen), 255)

    def finish(self):
        record = dict(sparse_rows(self._indices, self._signs), choices=np.array(self._choices, dtype=np.uint8),
                      logp=np.array(self._logps, dtype=np.float64))
        if self.with_frame:
            record["keyframes"] = np.array(self._keyframes, dtype=np.uint8)
        self._indices, self._signs, self._choices, self._logps, self._keyframes = [], [], [], [], []
        self._chained = False
        return record


def numpy_actor_critic_forward(params, indices, signs, offsets, logits, values, hidden=None):
    """kernels.actor_critic_forward's twin: the reference forward on dense chunks."""
    record = {"indices": indices, "signs": signs, "offsets": offsets}
    n_rows = len(offsets) - 1
    for start in range(0, n_rows, BACKWARD_CHUNK):
        stop = min(start + BACKWARD_CHUNK, n_rows)
        logits[start:stop], values[start:stop], h = reference.actor_critic_forward(
            params, densify(record, start, stop, params["W1"].shape[1]))
        if hidden is not None:
            hidden[start:stop] = h


def numpy_ppo_backward(params, indices, signs, offsets, rows, choices, logp_old, advantages, returns,
                       clip, vf_coef, ent_coef, grads, accumulate=False, hidden=None):
    """kernels.ppo_backward's twin: reference.ppo_loss on the minibatch's dense rows (which recomputes the
    hidden layers that the compiled kernel may take as ``hidden``)."""
    record = {"indices": indices, "signs": signs, "offsets": offsets}
    n_inputs = params["W1"].shape[1]
    x = (np.concatenate([densify(record, t, t + 1, n_inputs) for t in rows]) if len(rows)
         else np.zeros((0, n_inputs)))
    loss, dense_grads, stats = reference.ppo_loss(params, x, choices.astype(np.intp), logp_old, advantages,
                                                  returns, clip, vf_coef, ent_coef)
    for name, grad in dense_grads.items():
        if accumulate:
            grads[name] += grad
        else:
            grads[name][...] = grad
    return loss, stats


class Backend:
    """The kernels one run uses: steppers, the learners' functions, and preprocess (for video).

    ``stepper`` and ``actor_stepper`` are the stepper classes themselves, so a game's
    frame rule (``actions``, ``foreground``, ``first_row``) passes straight through.
    """

    def __init__(self, name, stepper, discount_rewards, sparse_backward, rmsprop_update, preprocess,
                 actor_stepper, actor_critic_forward, ppo_backward, adam_update, gae, expand_frame_record,
                 touched_columns):
        self.name = name
        self.stepper = stepper
        self.preprocess = preprocess
        self.discount_rewards = discount_rewards
        self.sparse_backward = sparse_backward
        self.rmsprop_update = rmsprop_update
        self.actor_stepper = actor_stepper
        self.actor_critic_forward = actor_critic_forward
        self.ppo_backward = ppo_backward
        self.adam_update = adam_update
        self.gae = gae
        self.expand_frame_record = expand_frame_record
        self.touched_columns = touched_columns


BACKENDS = ("cython", "numpy")


def get_backend(name, threads=1):
    """The backend called name. threads: how many threads the compiled actor-critic learner's kernels
    (forward, backward, Adam) split their work between; the results are the same for any count. The numpy
    backend runs in one."""
    threads = _validate.thread_count(threads)
    if name == "cython":
        from . import kernels

        def threaded(kernel):
            return kernel if threads == 1 else functools.partial(kernel, threads=threads)

        return Backend(name, kernels.PolicyStepper, kernels.discount_rewards,
                       kernels.sparse_backward, kernels.rmsprop_update, kernels.preprocess,
                       kernels.ActorStepper, threaded(kernels.actor_critic_forward), threaded(kernels.ppo_backward),
                       threaded(kernels.adam_update), kernels.gae, kernels.expand_frame_record,
                       kernels.touched_columns)
    if name == "numpy":
        return Backend(name, NumpyStepper, reference.discount_rewards,
                       numpy_sparse_backward, reference.rmsprop_update, reference.preprocess,
                       NumpyActorStepper, numpy_actor_critic_forward, numpy_ppo_backward,
                       reference.adam_update, reference.gae, reference.expand_frame_record,
                       reference.touched_columns)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
