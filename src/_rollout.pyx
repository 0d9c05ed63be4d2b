"""Trainer entry points: one call per environment step, and a sparse backward.

The difference of two binary frames is 0 or +-1 at each pixel, and only about
22 pixels are non-zero, so a recorded step is stored as the non-zero pixel
indices (int16) and signs (int8): about 100 bytes instead of a 51 KB float64 row.
"""
import numpy as np

from fastpg import _validate
from fastpg.constants import DOWN, PONG_FIRST_ROW, UP
from fastpg.reference import frame_rule

from fastpg_common cimport (
    N_COLS, N_PIXELS, N_ROWS, add_scaled, gated_output_grad, grow, int8_t, int16_t, int32_t, sigmoid,
    sparse_logit, uint8_t,
)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy


cdef class PolicyStepper:
    """Plays an episode: frame -> sparse difference -> forward -> action, recorded sparsely.

    Holds views of the caller's W1 (H, 6400), any order (Fortran is fastest),
    and W2 (H,): updating those arrays in place changes the policy it plays.
    actions: the two game actions of the sigmoid head (P(actions[0]) = p).
    The frame rule, so that any game's playfield can be read: ``foreground``
    uint8 (256,) of 0/1 per red value (copied; None: Pong's), and the
    160 screen rows read from ``first_row`` (see fastpg.reference.preprocess).
    """
    cdef const double[:, :] W1
    cdef const double[::1] W2
    cdef object _weights  # keeps the arrays alive
    cdef readonly tuple actions
    cdef int action_yes, action_no
    cdef readonly Py_ssize_t first_row
    cdef uint8_t foreground[256]  # a copy: the pixel loop reads the object's own bytes
    cdef uint8_t prev[N_PIXELS]
    cdef bint first
    cdef double* h
    cdef readonly double p
    cdef readonly Py_ssize_t nnz
    # The episode record, grown as needed.
    cdef int16_t* indices
    cdef int8_t* signs
    cdef Py_ssize_t n_entries, indices_capacity, signs_capacity
    cdef int32_t* offsets
    cdef double* dlogp
    cdef Py_ssize_t n_steps, steps_capacity, offsets_capacity

    def __cinit__(self, W1, W2, actions=(UP, DOWN), foreground=None, first_row=PONG_FIRST_ROW):
        n_hidden = _validate.weights(W1, W2)
        _validate.check_c_contiguous("W2", W2)
        self.actions = _validate.action_pair(actions)
        self.action_yes, self.action_no = self.actions
        self.first_row, table = frame_rule(first_row, foreground)
        cdef const uint8_t[::1] table_view = table
        memcpy(self.foreground, &table_view[0], 256)
        self.W1 = W1
        self.W2 = W2
        self._weights = (W1, W2)
        self.h = <double*>malloc(n_hidden * sizeof(double))
        if self.h == NULL:
            raise MemoryError()
        self.first = True

    def __dealloc__(self):
        free(self.h)
        free(self.indices)
        free(self.signs)
        free(self.offsets)
        free(self.dlogp)

    @property
    def n_steps(self):
        """Steps recorded in the current episode."""
        return self.n_steps

    def step(self, frame, double u):
        """Observe a uint8 (210, 160, 3) frame, act: actions[0] if u < p else actions[1].

        Records the step's sparse input and dlogp = y - p (y = 1 for
        actions[0]). The first frame of an episode has an all-zero difference.
        """
        if not isinstance(frame, np.ndarray) or frame.shape != _validate.FRAME_SHAPE:
            _validate.frame(frame)
        cdef const uint8_t[:, :, ::1] frame_view
        try:
            frame_view = frame
        except (TypeError, ValueError, BufferError):
            _validate.explain_frame_view(frame)  # raises a message naming the argument
            raise
        cdef int status
        with nogil:
            status = self._step(frame_view, u)
        if status != 0:
            raise MemoryError("out of memory while recording the episode")
        return self.action_yes if u < self.p else self.action_no

    cdef int _step(self, const uint8_t[:, :, ::1] frame, double u) noexcept nogil:
        cdef Py_ssize_t i, row, col, start
        cdef const uint8_t* red
        cdef uint8_t current
        cdef int diff
        # Room for a fully non-zero difference, so the pixel loop never checks.
        if grow(<void**>&self.indices, &self.indices_capacity, self.n_entries + N_PIXELS, sizeof(int16_t)) < 0:
            return -1
        if grow(<void**>&self.signs, &self.signs_capacity, self.n_entries + N_PIXELS, sizeof(int8_t)) < 0:
            return -1
        if grow(<void**>&self.dlogp, &self.steps_capacity, self.n_steps + 1, sizeof(double)) < 0:
            return -1
        if grow(<void**>&self.offsets, &self.offsets_capacity, self.n_steps + 2, sizeof(int32_t)) < 0:
            return -1
        start = self.n_entries
        for row in range(N_ROWS):
            red = &frame[self.first_row + 2 * row, 0, 0]
            for col in range(N_COLS):
                i = row * N_COLS + col
                current = self.foreground[red[6 * col]]  # every 2nd column, 3 channels
                diff = 0 if self.first else <int>current - <int>self.prev[i]
                self.prev[i] = current
                if diff != 0:
                    self.indices[self.n_entries] = <int16_t>i
                    self.signs[self.n_entries] = <int8_t>diff
                    self.n_entries += 1
        self.first = False
        self.nnz = self.n_entries - start
        self.p = sigmoid(sparse_logit(
            self.W1, self.W2, &self.indices[start], &self.signs[start], self.nnz, self.h))
        self.dlogp[self.n_steps] = (1.0 if u < self.p else 0.0) - self.p
        self.offsets[self.n_steps] = <int32_t>start
        self.n_steps += 1
        self.offsets[self.n_steps] = <int32_t>self.n_entries
        return 0

    def finish(self):
        """Return the episode as numpy arrays and start a new one.

        indices int16 (E,), signs int8 (E,): non-zero pixels of all steps;
        offsets int32 (T + 1,): step t owns entries offsets[t]:offsets[t+1];
        dlogp float64 (T,).
        """
        episode = {
            "indices": np.empty(self.n_entries, dtype=np.int16),
            "signs": np.empty(self.n_entries, dtype=np.int8),
            "offsets": np.zeros(self.n_steps + 1, dtype=np.int32),
            "dlogp": np.empty(self.n_steps, dtype=np.float64),
        }
        cdef int16_t[::1] indices = episode["indices"]
        cdef int8_t[::1] signs = episode["signs"]
        cdef int32_t[::1] offsets = episode["offsets"]
        cdef double[::1] dlogp = episode["dlogp"]
        if self.n_entries:
            memcpy(&indices[0], self.indices, self.n_entries * sizeof(int16_t))
            memcpy(&signs[0], self.signs, self.n_entries * sizeof(int8_t))
        if self.n_steps:
            memcpy(&offsets[0], self.offsets, (self.n_steps + 1) * sizeof(int32_t))
            memcpy(&dlogp[0], self.dlogp, self.n_steps * sizeof(double))
        self.reset()
        return episode

    def reset(self):
        """Forget the current episode; the next frame is an episode's first."""
        self.n_entries = 0
        self.n_steps = 0
        self.first = True


cdef void sparse_backward_kernel(
    const double[:, :] W1, const double[::1] W2, const int16_t* indices, const int8_t* signs,
    const int32_t[::1] offsets, const double[::1] weighted_dlogp,
    double[:, :] dW1, double[::1] dW2, double* h, double* dh,
) noexcept nogil:
    cdef Py_ssize_t t, j, k, col, start, stop, H = W2.shape[0]
    cdef double g
    for t in range(weighted_dlogp.shape[0]):
        start = offsets[t]
        stop = offsets[t + 1]
        g = weighted_dlogp[t]
        sparse_logit(W1, W2, indices + start, signs + start, stop - start, h)
        add_scaled(&dW2[0], h, g, H)
        gated_output_grad(dh, h, W2, g)
        for k in range(start, stop):
            col = indices[k]
            if dW1.strides[0] == sizeof(double):
                add_scaled(&dW1[0, col], dh, <double>signs[k], H)
            else:
                for j in range(H):
                    dW1[j, col] += dh[j] * signs[k]


def sparse_backward(W1, W2, indices, signs, offsets, weighted_dlogp, dW1, dW2):
    """Add one recorded episode's gradients into dW1 (H, 6400) and dW2 (H,), in place.

    The episode is PolicyStepper.finish()'s (indices, signs, offsets) and
    weighted_dlogp = dlogp * advantage (T,). Hidden activations are recomputed
    from W1, which must be the weights the episode was played with. The same
    sums as fastpg.reference.policy_backward, without a dense (T, 6400) input.
    """
    n_hidden = _validate.weights(W1, W2)
    _validate.check_c_contiguous("W2", W2)
    for name, arr, dtype in (("indices", indices, np.int16), ("signs", signs, np.int8),
                             ("offsets", offsets, np.int32)):
        _validate.as_array(name, arr)
        _validate.check_dtype(name, arr, dtype)
        _validate.check_ndim(name, arr, 1)
        _validate.check_c_contiguous(name, arr)
    _validate.check_size("signs", signs, 0, indices.shape[0], "entries, length of indices")
    n_steps = offsets.shape[0] - 1
    if n_steps < 0 or offsets[0] != 0 or offsets[n_steps] != indices.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must rise from 0 to len(indices), one more entry than steps")
    if indices.shape[0] and (indices.min() < 0 or indices.max() >= _validate.N_PIXELS):
        raise ValueError(f"indices must lie in [0, {_validate.N_PIXELS})")
    _validate.float_vector("weighted_dlogp", weighted_dlogp, n_steps, "steps, len(offsets) - 1")
    _validate.check_c_contiguous("weighted_dlogp", weighted_dlogp)
    _validate.float_matrix("dW1", dW1, {0: (n_hidden, "hidden units"), 1: (_validate.N_PIXELS, "pixels")})
    _validate.float_vector("dW2", dW2, n_hidden, "hidden units")
    _validate.check_c_contiguous("dW2", dW2)
    _validate.check_writeable("dW1", dW1)
    _validate.check_writeable("dW2", dW2)
    cdef const double[:, :] W1_view = W1
    cdef const double[::1] W2_view = W2
    cdef const int16_t[::1] indices_view = indices
    cdef const int8_t[::1] signs_view = signs
    cdef const int32_t[::1] offsets_view = offsets
    cdef const double[::1] dlogp_view = weighted_dlogp
    cdef double[:, :] dW1_view = dW1
    cdef double[::1] dW2_view = dW2
    cdef const int16_t* indices_ptr = &indices_view[0] if indices.shape[0] else NULL
    cdef const int8_t* signs_ptr = &signs_view[0] if indices.shape[0] else NULL
    cdef Py_ssize_t H = n_hidden
    cdef double* scratch = <double*>malloc(2 * H * sizeof(double))
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        sparse_backward_kernel(W1_view, W2_view, indices_ptr, signs_ptr, offsets_view,
                               dlogp_view, dW1_view, dW2_view, scratch, scratch + H)
    free(scratch)
