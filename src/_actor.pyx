"""The actor-critic's kernels: a stepper that plays from palette screens, the batched sparse
forward, the backward of the whole loss, and Adam.

The network is the seed's hidden layer with biases, a softmax head over A
actions and a value head: h = relu(W1 x + b1), logits = W_pi h + b_pi,
value = w_v . h + b_v. Inputs are the sparse +-1 difference frames of
:mod:`fastpg._rollout`'s record format, so every pass touches only the
non-zero pixels' columns of W1. A W1 of 12,800 columns also sees the current
binary frame: each record row then lists the difference's entries, then the
frame's foreground pixels as entries 6400 + i of sign +1. fastpg.reference
states the same math densely.

The learner's kernels take ``threads``: they split their work between that
many OpenMP threads so that every number is computed by the same operations
in the same order whatever the count, and the results are bit-identical
(rows of the forward are independent; the backward's gradient sums over rows
are split by hidden unit, each thread summing all rows for its units; Adam
is elementwise). Without OpenMP at build time they run in one thread.
"""
import numpy as np

from fastpg import _validate
from fastpg.constants import PONG_FIRST_ROW

from fastpg_common cimport (
    N_COLS, N_PIXELS, N_ROWS, add_scaled, grow, int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t,
)
from libc.math cimport NAN, exp, log, pow
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset
from cython.parallel cimport prange, threadid

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)

cdef extern from "wide_loops.h" nogil:
    int adam_step(double* w, double* g, double* m, double* v, Py_ssize_t n, double learning_rate,
                  double beta1, double beta2, double eps, double m_scale, double v_scale, int clear)
    void add_signed_columns(double* h, const double* columns, Py_ssize_t H, const int16_t* indices,
                            const int8_t* signs, Py_ssize_t nnz)
    void scatter_columns(double* G, Py_ssize_t n, Py_ssize_t stride, const double* D, Py_ssize_t row_stride,
                         const int32_t* columns, const int32_t* starts, Py_ssize_t n_columns,
                         const int16_t* rows, const int8_t* signs)
    enum: ROW_GROUP
    void group_heads(const double* W_pi, const double* b_pi, const double* w_v, double b_v, Py_ssize_t H,
                     Py_ssize_t A, const double* hs, Py_ssize_t n, double* logits, double* values)

PALETTE_SHAPE = _validate.FRAME_SHAPE[:2]

cdef enum:
    UNKNOWN_COLOUR = 2  # a lut entry not filled yet
    LINE_DOUBLES = 8  # a 64-byte cache line: threads split the hidden units in whole lines
    SERIAL_ADAM = 1 << 16  # arrays shorter than this are not worth waking threads for
    SCREEN_WIDTH = 2 * N_COLS  # an Atari screen's columns, every other one read
    INPUT_LIMIT = 1 << 15  # a record's int16 indices name fewer inputs than this
    ROW_CHUNK = 128  # ppo_backward's rows per pass of its two phases: their h and dh (400 KB) stay in L2; 128 and
    # 256 rows timed alike, 9 % faster than 64 (more of a column's entries share its one load and store)


cdef void* line_aligned(size_t size) noexcept nogil:
    """malloc, but starting a 64-byte cache line (freed by free): rows of hidden layers then start lines too
    when H is a multiple of 8, and the kernels' 64-byte vector loads split no line."""
    cdef void* memory = NULL
    if posix_memalign(&memory, 64, size if size else 64) != 0:
        return NULL
    return memory


cdef struct Net:
    # Raw pointers into the caller's parameter arrays (checked by _net).
    const double* W1  # (H, n_inputs) Fortran order: column j is W1 + j * H
    const double* b1
    const double* W_pi  # (A, H) C order
    const double* b_pi
    const double* w_v
    double b_v
    Py_ssize_t H, A
    Py_ssize_t n_inputs  # N_PIXELS (the difference frame) or 2 * N_PIXELS (then the current frame)


cdef void hidden_layer(const Net* net, const int16_t* indices, const int8_t* signs, Py_ssize_t nnz,
                       double* h) noexcept nogil:
    """h = relu(b1 + sum of the non-zero pixels' signed W1 columns)."""
    cdef Py_ssize_t j
    for j in range(net.H):
        h[j] = net.b1[j]
    if nnz:
        add_signed_columns(h, net.W1, net.H, indices, signs, nnz)
    for j in range(net.H):  # a select, not a branch: the compiler vectorises it, and signs are unpredictable
        h[j] = 0.0 if h[j] < 0.0 else h[j]


cdef double heads(const Net* net, const double* h, double* logits) noexcept nogil:
    """Write logits (A,) from h; return the value. (The learner's kernels, with many rows, use
    group_heads, which computes the same bits faster.)"""
    cdef Py_ssize_t a, j
    cdef double z, value = net.b_v
    cdef const double* row
    for a in range(net.A):
        row = net.W_pi + a * net.H
        z = net.b_pi[a]
        for j in range(net.H):
            z += row[j] * h[j]
        logits[a] = z
    for j in range(net.H):
        value += net.w_v[j] * h[j]
    return value


cdef Py_ssize_t list_foreground(const uint8_t* frame, int16_t* indices, int8_t* signs) noexcept nogil:
    """Write a binary frame's foreground pixels i, ascending, as entries N_PIXELS + i of sign +1 (a
    frame-seeing row's second block); returns how many. Most of a frame is background, so 8 pixels are
    compared at once (memcmp of 8 bytes compiles to one load and compare)."""
    cdef Py_ssize_t word, i, n = 0
    cdef uint64_t zero = 0
    for word in range(0, N_PIXELS, 8):
        if memcmp(&frame[word], &zero, 8) == 0:
            continue
        for i in range(word, word + 8):
            if frame[i]:
                indices[n] = <int16_t>(N_PIXELS + i)
                signs[n] = 1
                n += 1
    return n


cdef double log_softmax(const double* logits, double* logp, Py_ssize_t A) noexcept nogil:
    """logp = log softmax(logits); returns the entropy."""
    cdef Py_ssize_t a
    cdef double top = logits[0], total = 0.0, log_total, entropy = 0.0
    for a in range(1, A):
        if logits[a] > top:
            top = logits[a]
    for a in range(A):
        total += exp(logits[a] - top)
    log_total = log(total)
    for a in range(A):
        logp[a] = logits[a] - top - log_total
        entropy -= exp(logp[a]) * logp[a]
    return entropy


cdef Net _net(params) except *:
    """Check the named parameters and point a Net at them."""
    W1, b1, W_pi, b_pi, w_v, b_v = (params[name] for name in ("W1", "b1", "W_pi", "b_pi", "w_v", "b_v"))
    H = _validate.float_matrix("W1", W1, {}).shape[0]
    if W1.shape[1] not in (N_PIXELS, 2 * N_PIXELS):
        raise ValueError(f"W1 has {W1.shape[1]} columns, expected {N_PIXELS} (the 80x80 difference frame) or "
                         f"{2 * N_PIXELS} (the difference and the current frame)")
    if not W1.flags.f_contiguous:
        raise ValueError("W1 must be Fortran-ordered; pass numpy.asfortranarray(W1)")
    A = _validate.float_matrix("W_pi", W_pi, {1: (H, "hidden units, rows of W1")}).shape[0]
    if H < 1 or A < 2:
        raise ValueError(f"the network needs at least 1 hidden unit and 2 actions, got H={H}, A={A}")
    for name, arr, length in (("b1", b1, H), ("b_pi", b_pi, A), ("w_v", w_v, H), ("b_v", b_v, 1)):
        _validate.float_vector(name, arr, length, "its layer's size")
    for name, arr in (("W_pi", W_pi), ("b1", b1), ("b_pi", b_pi), ("w_v", w_v)):
        _validate.check_c_contiguous(name, arr)
    cdef Net net
    cdef const double[::1, :] W1_view = W1
    cdef const double[:, ::1] W_pi_view = W_pi
    cdef const double[::1] b1_view = b1, b_pi_view = b_pi, w_v_view = w_v
    net.W1 = &W1_view[0, 0]
    net.b1 = &b1_view[0]
    net.W_pi = &W_pi_view[0, 0]
    net.b_pi = &b_pi_view[0]
    net.w_v = &w_v_view[0]
    net.b_v = b_v[0]
    net.H = H
    net.A = A
    net.n_inputs = W1.shape[1]
    return net


cdef class ActorStepper:
    """Plays with the softmax policy: palette screen -> sparse difference -> action, recorded sparsely.

    params: the named arrays (W1 Fortran-ordered); they are read in place, so
    updates show (b_v is read when the stepper is made; playing does not use it).
    actions: int (A,) game actions of the policy's outputs. lut: uint8 (256,)
    foreground (1), background (0) or unknown (2) per palette index;
    ``fill_lut()`` is called when the screen shows an unknown colour and must
    fill its entry (from the RGB screen), after which the step is redone.
    first_row: the first of the 160 screen rows read, the game's playfield
    (the lut is the rest of its frame rule); see fastpg.reference.preprocess_palette.

    The record holds rows: one per ``step`` (its input and its choice) and one
    per ``peek`` (an input only, to value the state a segment ends in). A W1
    of 12,800 columns makes each row's input the difference and then the
    current frame (see the module docstring).
    """
    cdef Net net
    cdef object _arrays  # keeps the parameter arrays, actions and lut alive
    cdef const int32_t[::1] actions
    cdef const uint8_t[::1] lut
    cdef object fill_lut
    cdef readonly Py_ssize_t first_row
    cdef uint8_t prev[N_PIXELS]
    cdef uint8_t current[N_PIXELS]
    # The screen rows the last read without an unknown colour saw, whose verdicts current holds: a row
    # that has not changed since (most of a frame) needs no lookups.
    cdef uint8_t seen_rows[N_ROWS * SCREEN_WIDTH]
    cdef bint seen_rows_valid
    cdef bint first
    cdef bint with_frame  # the network also sees the current frame
    cdef bint chained  # the last row recorded was a step, and prev is its frame: the next row need not list its frame
    cdef double* h
    cdef double* logits
    cdef double* logp  # log softmax(logits) of the last step
    cdef readonly double[::1] probs
    cdef readonly Py_ssize_t nnz, choice
    cdef int16_t* indices
    cdef int8_t* signs
    cdef Py_ssize_t n_entries, indices_capacity, signs_capacity
    cdef int32_t* offsets
    cdef uint8_t* choices
    cdef double* logps  # per row: the log-probability of its choice (NaN for a peeked row)
    cdef uint8_t* keyframes  # per row, with_frame: 1 where the row lists its frame (reference.expand_frame_record)
    cdef Py_ssize_t n_rows, n_steps, offsets_capacity, choices_capacity, logps_capacity, keyframes_capacity

    def __cinit__(self, params, actions, lut, fill_lut, first_row=PONG_FIRST_ROW):
        self.net = _net(params)
        self.first_row = _validate.first_row(first_row)
        actions = np.ascontiguousarray(actions, dtype=np.int32)
        if actions.shape != (self.net.A,):
            raise ValueError(f"actions must list one game action per policy output ({self.net.A}), got {actions.shape}")
        _validate.palette_lut(lut)
        self.actions = actions
        self.lut = lut
        self.fill_lut = fill_lut
        self._arrays = (dict(params), actions, lut)
        self.h = <double*>line_aligned(self.net.H * sizeof(double))
        self.logits = <double*>malloc(self.net.A * sizeof(double))
        self.logp = <double*>malloc(self.net.A * sizeof(double))
        if self.h == NULL or self.logits == NULL or self.logp == NULL:
            raise MemoryError()
        self.probs = np.zeros(self.net.A)
        self.first = True
        self.with_frame = self.net.n_inputs == 2 * N_PIXELS

    def __dealloc__(self):
        free(self.h)
        free(self.logits)
        free(self.logp)
        free(self.indices)
        free(self.signs)
        free(self.offsets)
        free(self.choices)
        free(self.logps)
        free(self.keyframes)

    @property
    def p(self):
        """The probability of the policy's first action at the last step (Pong: up)."""
        return self.probs[0]

    @property
    def n_steps(self):
        return self.n_steps

    cdef const uint8_t[:, ::1] _screen(self, screen) except *:
        if not isinstance(screen, np.ndarray) or screen.shape != PALETTE_SHAPE:
            _validate.palette_screen(screen)
        cdef const uint8_t[:, ::1] view
        try:
            view = screen
        except (TypeError, ValueError, BufferError):
            _validate.palette_screen(screen)
            _validate.check_c_contiguous("screen", screen)
            raise
        return view

    cdef void _read(self, screen) except *:
        """current = the screen's binary 80x80 frame, filling the lut first if a colour is new."""
        cdef const uint8_t[:, ::1] view = self._screen(screen)
        cdef uint8_t unknown
        cdef int attempt
        for attempt in range(2):
            with nogil:
                unknown = self._binary(view)
            if not unknown:
                return
            if attempt == 0:
                self.fill_lut()
        raise ValueError("the screen shows a colour that fill_lut() did not add to the lut")

    cdef uint8_t _binary(self, const uint8_t[:, ::1] screen) noexcept nogil:
        cdef Py_ssize_t row, col
        cdef const uint8_t* line
        cdef uint8_t* kept
        cdef uint8_t value, seen = 0
        for row in range(N_ROWS):
            line = &screen[self.first_row + 2 * row, 0]
            kept = &self.seen_rows[row * SCREEN_WIDTH]
            if self.seen_rows_valid and memcmp(line, kept, SCREEN_WIDTH) == 0:
                continue  # current's row already holds this row's verdicts
            memcpy(kept, line, SCREEN_WIDTH)
            for col in range(N_COLS):
                value = self.lut[line[2 * col]]
                seen |= value
                self.current[row * N_COLS + col] = value
        # A row with an unknown colour is read again once the lut has it: the kept rows are trusted only
        # after a read that saw none.
        self.seen_rows_valid = not (seen & UNKNOWN_COLOUR)
        return seen & UNKNOWN_COLOUR

    cdef int _record_input(self, bint update_previous) noexcept nogil:
        """Append the difference current - prev (and with_frame, then current) as a record row; returns -1
        when out of memory.

        nnz counts the row's whole input, which the step's forward reads. With
        the frame, a row chained to the step before keeps only its difference
        in the record: its frame entries stay past the record's end, unused
        once the forward has read them."""
        cdef Py_ssize_t i, word, start, difference_end
        cdef int diff
        if grow(<void**>&self.indices, &self.indices_capacity, self.n_entries + self.net.n_inputs,
                sizeof(int16_t)) < 0:
            return -1
        if grow(<void**>&self.signs, &self.signs_capacity, self.n_entries + self.net.n_inputs, sizeof(int8_t)) < 0:
            return -1
        if grow(<void**>&self.offsets, &self.offsets_capacity, self.n_rows + 2, sizeof(int32_t)) < 0:
            return -1
        if grow(<void**>&self.choices, &self.choices_capacity, self.n_rows + 1, sizeof(uint8_t)) < 0:
            return -1
        if grow(<void**>&self.logps, &self.logps_capacity, self.n_rows + 1, sizeof(double)) < 0:
            return -1
        if grow(<void**>&self.keyframes, &self.keyframes_capacity, self.n_rows + 1, sizeof(uint8_t)) < 0:
            return -1
        start = self.n_entries
        if not self.first:
            # Most of a frame is unchanged: compare 8 pixels at once (memcmp of 8 bytes compiles to one
            # load and compare) and look at single pixels only where a word differs.
            for word in range(0, N_PIXELS, 8):
                if memcmp(&self.current[word], &self.prev[word], 8) == 0:
                    continue
                for i in range(word, word + 8):
                    diff = <int>self.current[i] - <int>self.prev[i]
                    if diff != 0:
                        self.indices[self.n_entries] = <int16_t>i
                        self.signs[self.n_entries] = <int8_t>diff
                        self.n_entries += 1
        difference_end = self.n_entries
        if self.with_frame:
            self.n_entries += list_foreground(self.current, &self.indices[self.n_entries],
                                              &self.signs[self.n_entries])
        self.nnz = self.n_entries - start
        self.keyframes[self.n_rows] = not self.chained
        if self.with_frame and self.chained:
            self.n_entries = difference_end
        if update_previous:
            memcpy(self.prev, self.current, N_PIXELS)
            self.first = False
        self.chained = update_previous
        self.offsets[self.n_rows] = <int32_t>start
        self.n_rows += 1
        self.offsets[self.n_rows] = <int32_t>self.n_entries
        return 0

    def step(self, screen, double u):
        """Observe a uint8 (210, 160) palette screen and choose: returns the game action.

        The choice is output k, the first whose cumulative probability
        exceeds u (the last when rounding leaves none). Greedy play then
        calls ``greedy()``.
        """
        self._read(screen)
        cdef Py_ssize_t a
        cdef double total = 0.0
        cdef double[::1] probs = self.probs
        with nogil:
            if self._record_input(True) < 0:
                with gil:
                    raise MemoryError("out of memory while recording")
            hidden_layer(&self.net, &self.indices[self.offsets[self.n_rows - 1]],
                         &self.signs[self.offsets[self.n_rows - 1]], self.nnz, self.h)
            heads(&self.net, self.h, self.logits)
            log_softmax(self.logits, self.logp, self.net.A)
            for a in range(self.net.A):
                probs[a] = exp(self.logp[a])
            self.choice = self.net.A - 1
            for a in range(self.net.A):
                total += probs[a]
                if u < total:
                    self.choice = a
                    break
            self.choices[self.n_rows - 1] = <uint8_t>self.choice
            self.logps[self.n_rows - 1] = self.logp[self.choice]
        self.n_steps += 1
        return self.actions[self.choice]

    def greedy(self):
        """Replace the last step's choice by the likeliest output; returns its game action."""
        cdef Py_ssize_t a, best = 0
        if self.n_rows == 0 or self.choices[self.n_rows - 1] == 255:
            raise ValueError("greedy() replaces the last step's choice: call it right after step()")
        for a in range(1, self.net.A):
            if self.probs[a] > self.probs[best]:
                best = a
        self.choice = best
        self.choices[self.n_rows - 1] = <uint8_t>best
        self.logps[self.n_rows - 1] = self.logp[best]
        return self.actions[best]

    def peek(self, screen):
        """Record the input of this screen without choosing or moving on (the next step sees it again)."""
        self._read(screen)
        if self._record_input(False) < 0:
            raise MemoryError("out of memory while recording")
        self.choices[self.n_rows - 1] = 255
        self.logps[self.n_rows - 1] = NAN

    def new_episode(self):
        """The next screen starts an episode: its difference is all zero. The record goes on."""
        self.first = True
        self.chained = False

    @property
    def previous(self):
        """The last stepped binary frame, uint8 (6400,), or None at an episode's start."""
        if self.first:
            return None
        return np.frombuffer(bytes(<uint8_t[:N_PIXELS]>self.prev), dtype=np.uint8)

    @previous.setter
    def previous(self, frame):
        if frame is None:
            self.first = True
            self.chained = False
            return
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.shape != (N_PIXELS,) or frame.max(initial=0) > 1:
            raise ValueError(f"previous must be a (6400,) array of 0/1, got shape {frame.shape}")
        cdef const uint8_t[::1] view = frame
        memcpy(self.prev, &view[0], N_PIXELS)
        self.first = False
        self.chained = False

    def finish(self):
        """Return the record and start an empty one (the previous frame is kept).

        indices int16 (E,), signs int8 (E,), offsets int32 (R + 1,) as
        PolicyStepper's; choices uint8 (R,): the output chosen at each row,
        255 for a peeked row; logp float64 (R,): the log-probability the
        policy gave that choice (NaN for a peeked row), which spares a lagged
        learner a forward pass with the weights that played. A network that
        sees the frame gets a compact record: its rows list their frames only
        where keyframes uint8 (R,) is 1; fastpg.reference.expand_frame_record
        says how the rest follow, and the backend's expand_frame_record
        rebuilds them.
        """
        record = {
            "indices": np.empty(self.n_entries, dtype=np.int16),
            "signs": np.empty(self.n_entries, dtype=np.int8),
            "offsets": np.zeros(self.n_rows + 1, dtype=np.int32),
            "choices": np.empty(self.n_rows, dtype=np.uint8),
            "logp": np.empty(self.n_rows, dtype=np.float64),
        }
        cdef int16_t[::1] indices = record["indices"]
        cdef int8_t[::1] signs = record["signs"]
        cdef int32_t[::1] offsets = record["offsets"]
        cdef uint8_t[::1] choices = record["choices"]
        cdef double[::1] logp = record["logp"]
        if self.n_entries:
            memcpy(&indices[0], self.indices, self.n_entries * sizeof(int16_t))
            memcpy(&signs[0], self.signs, self.n_entries * sizeof(int8_t))
        if self.n_rows:
            memcpy(&offsets[0], self.offsets, (self.n_rows + 1) * sizeof(int32_t))
            memcpy(&choices[0], self.choices, self.n_rows * sizeof(uint8_t))
            memcpy(&logp[0], self.logps, self.n_rows * sizeof(double))
        cdef uint8_t[::1] keyframes
        if self.with_frame:
            record["keyframes"] = np.empty(self.n_rows, dtype=np.uint8)
            keyframes = record["keyframes"]
            if self.n_rows:
                memcpy(&keyframes[0], self.keyframes, self.n_rows * sizeof(uint8_t))
        self.n_entries = self.n_rows = self.n_steps = 0
        self.chained = False  # a record's rows never refer to another record's
        return record

    def reset(self):
        """Forget the record and the previous frame."""
        self.n_entries = self.n_rows = self.n_steps = 0
        self.first = True
        self.chained = False


def _check_record_array(name, arr, dtype):
    """A record's array: a C-contiguous 1-D numpy array of exactly dtype."""
    _validate.as_array(name, arr)
    _validate.check_dtype(name, arr, dtype)
    _validate.check_ndim(name, arr, 1)
    _validate.check_c_contiguous(name, arr)


def _check_offsets(indices, offsets):
    """A record's int16 indices and int32 offsets, which must rise from 0 to len(indices); returns its rows."""
    _check_record_array("indices", indices, np.int16)
    _check_record_array("offsets", offsets, np.int32)
    n_rows = offsets.shape[0] - 1
    if n_rows < 0 or offsets[0] != 0 or offsets[n_rows] != indices.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must rise from 0 to len(indices), one more entry than rows")
    return n_rows


def _check_record(indices, signs, offsets, Py_ssize_t n_inputs):
    n_rows = _check_offsets(indices, offsets)
    _check_record_array("signs", signs, np.int8)
    _validate.check_size("signs", signs, 0, indices.shape[0], "entries, length of indices")
    if indices.shape[0] and (indices.min() < 0 or indices.max() >= n_inputs):
        raise ValueError(f"indices must lie in [0, {n_inputs}) (the columns of W1)")
    return n_rows


cdef enum FrameRecordError:
    FRAME_RECORD_OK, FRAME_ENTRY_IN_CHAINED_ROW, DIFFERENCE_OFF_FRAME


cdef FrameRecordError frame_record_pass(const int16_t* idx, const int8_t* sgn, const int32_t* off,
                                        const uint8_t* keyframes, Py_ssize_t n_rows, int16_t* out_idx,
                                        int8_t* out_sgn, int32_t* out_off, Py_ssize_t* total,
                                        Py_ssize_t* bad_row) noexcept nogil:
    """One pass of expand_frame_record over the rows: with out_idx NULL it only counts the full record's
    entries into total (and checks the record); otherwise it writes them.

    Writing, it keeps the frame's foreground as a list too: a chained row's list is the last one merged
    with the row's difference (both ascending), about 50 steps where a scan of the frame takes 800."""
    cdef uint8_t frame[N_PIXELS]
    cdef int16_t lists[2][N_PIXELS]
    cdef int16_t* listed = lists[0]  # the frame's foreground pixels, ascending (n_listed of them)
    cdef int16_t* merged = lists[1]
    cdef Py_ssize_t r, e, i, n = 0, foreground = 0, n_listed = 0, k, a, b, start
    cdef int value
    cdef bint ascending
    memset(frame, 0, N_PIXELS)
    for r in range(n_rows):
        if keyframes[r]:
            memset(frame, 0, N_PIXELS)
            foreground = 0
        for e in range(off[r], off[r + 1]):
            i = idx[e]
            if i >= N_PIXELS:
                if not keyframes[r]:
                    bad_row[0] = r
                    return FRAME_ENTRY_IN_CHAINED_ROW
                foreground += 1 - frame[i - N_PIXELS]
                frame[i - N_PIXELS] = 1
                continue
            if not keyframes[r]:
                value = <int>frame[i] + sgn[e]
                if value < 0 or value > 1:
                    bad_row[0] = r
                    return DIFFERENCE_OFF_FRAME
                foreground += value - frame[i]
                frame[i] = <uint8_t>value
            if out_idx != NULL:
                out_idx[n] = <int16_t>i
                out_sgn[n] = sgn[e]
            n += 1
        if out_idx == NULL:  # counting: the foreground's size is known without a scan
            n += foreground
            continue
        ascending = True
        for e in range(off[r] + 1, off[r + 1]):
            ascending = ascending and idx[e] > idx[e - 1]
        if keyframes[r] or not ascending:  # a scan, as the stepper lists it
            n_listed = list_foreground(frame, &out_idx[n], &out_sgn[n])
            for k in range(n_listed):
                listed[k] = <int16_t>(out_idx[n + k] - N_PIXELS)
        else:  # the pixels that may be lit are the ones lit before and the ones the difference names
            a, b, k, start = 0, off[r], 0, n
            while a < n_listed or b < off[r + 1]:
                if b == off[r + 1] or (a < n_listed and listed[a] < idx[b]):
                    i = listed[a]
                    a += 1
                elif a == n_listed or idx[b] < listed[a]:
                    i = idx[b]
                    b += 1
                else:
                    i = listed[a]
                    a += 1
                    b += 1
                if frame[i]:
                    merged[k] = <int16_t>i
                    out_idx[start + k] = <int16_t>(N_PIXELS + i)
                    out_sgn[start + k] = 1
                    k += 1
            n_listed = k
            listed, merged = merged, listed
        n += n_listed
        out_off[r + 1] = <int32_t>n
    total[0] = n
    return FRAME_RECORD_OK


def expand_frame_record(indices, signs, offsets, keyframes):
    """reference.expand_frame_record, compiled: (indices, signs, offsets) of the full record of a
    frame-seeing network's compact one."""
    n_rows = _check_record(indices, signs, offsets, 2 * N_PIXELS)
    _check_record_array("keyframes", keyframes, np.uint8)
    if keyframes.shape[0] != n_rows:
        raise ValueError(f"keyframes must have one entry per row ({n_rows}), got shape {keyframes.shape}")
    if n_rows and not keyframes[0]:
        raise ValueError("a compact frame record's first row must be a keyframe")
    cdef const int16_t[::1] idx = indices
    cdef const int8_t[::1] sgn = signs
    cdef const int32_t[::1] off = offsets
    cdef const uint8_t[::1] keys = keyframes
    cdef const int16_t* idx_ptr = &idx[0] if idx.shape[0] else NULL
    cdef const int8_t* sgn_ptr = &sgn[0] if sgn.shape[0] else NULL
    cdef const uint8_t* keys_ptr = &keys[0] if keys.shape[0] else NULL
    cdef Py_ssize_t total = 0, bad_row = 0, R = n_rows
    cdef FrameRecordError error
    with nogil:
        error = frame_record_pass(idx_ptr, sgn_ptr, &off[0], keys_ptr, R, NULL, NULL, NULL, &total, &bad_row)
    if error == FRAME_ENTRY_IN_CHAINED_ROW:
        raise ValueError(f"row {bad_row} is not a keyframe but lists frame entries")
    if error == DIFFERENCE_OFF_FRAME:
        raise ValueError(f"row {bad_row}'s difference does not apply to the frame before it")
    full_indices = np.empty(total, dtype=np.int16)
    full_signs = np.empty(total, dtype=np.int8)
    full_offsets = np.zeros(n_rows + 1, dtype=np.int32)
    cdef int16_t[::1] out_idx = full_indices
    cdef int8_t[::1] out_sgn = full_signs
    cdef int32_t[::1] out_off = full_offsets
    cdef int16_t dummy_idx
    cdef int8_t dummy_sgn
    with nogil:  # the counting pass checked the record; this one cannot fail
        frame_record_pass(idx_ptr, sgn_ptr, &off[0], keys_ptr, R, &out_idx[0] if total else &dummy_idx,
                          &out_sgn[0] if total else &dummy_sgn, &out_off[0], &total, &bad_row)
    return full_indices, full_signs, full_offsets


cdef inline Py_ssize_t part_start(Py_ssize_t count, Py_ssize_t part, Py_ssize_t parts) noexcept nogil:
    """Where part (of parts) of count items starts, splitting them in whole cache lines; part = parts
    gives count."""
    cdef Py_ssize_t lines = (count + LINE_DOUBLES - 1) // LINE_DOUBLES
    return min(count, lines * part // parts * LINE_DOUBLES)


cdef inline const int16_t* row_indices(const int16_t* idx, const int32_t* off, Py_ssize_t t) noexcept nogil:
    return idx + off[t] if off[t + 1] > off[t] else NULL


cdef inline const int8_t* row_signs(const int8_t* sgn, const int32_t* off, Py_ssize_t t) noexcept nogil:
    return sgn + off[t] if off[t + 1] > off[t] else NULL


cdef inline void record_row_hidden(const Net* net, const int16_t* idx, const int8_t* sgn, const int32_t* off,
                                   Py_ssize_t t, double* h) noexcept nogil:
    """h = the hidden layer of the record's row t."""
    hidden_layer(net, row_indices(idx, off, t), row_signs(sgn, off, t), off[t + 1] - off[t], h)


cdef inline void rows_heads(const Net* net, const double* hs, Py_ssize_t n, double* logits,
                            double* values) noexcept nogil:
    """The heads of n <= ROW_GROUP rows whose hidden layers are hs (H apart): logits (n, A), values (n,)."""
    group_heads(net.W_pi, net.b_pi, net.w_v, net.b_v, net.H, net.A, hs, n, logits, values)


def _check_hidden(hidden, n_rows, Py_ssize_t H, bint written):
    """hidden: None, or float64 (rows of the record, H) in C order; returns whether it holds any row."""
    if hidden is None:
        return False
    _validate.float_matrix("hidden", hidden, {0: (n_rows, "rows of the record"), 1: (H, "hidden units")})
    _validate.check_c_contiguous("hidden", hidden)
    if written:
        _validate.check_writeable("hidden", hidden)
    return n_rows > 0


def actor_critic_forward(params, indices, signs, offsets, logits, values, threads=1, hidden=None):
    """Fill logits (R, A) and values (R,) for every row of a sparse record, in place (rows split
    between ``threads`` threads); with ``hidden`` (float64 (R, H)), also each row's hidden layer, which
    ``ppo_backward`` can take instead of recomputing it while the weights stay the same."""
    cdef Net net = _net(params)
    n_rows = _check_record(indices, signs, offsets, net.n_inputs)
    cdef double[:, ::1] hidden_view = hidden if _check_hidden(hidden, n_rows, net.H, True) else None
    cdef double* hidden_ptr = &hidden_view[0, 0] if hidden_view is not None else NULL
    cdef Py_ssize_t T = _validate.thread_count(threads)
    _validate.float_matrix("logits", logits, {0: (n_rows, "rows of the record"), 1: (net.A, "actions")})
    _validate.float_vector("values", values, n_rows, "rows of the record")
    for name, arr in (("logits", logits), ("values", values)):
        _validate.check_c_contiguous(name, arr)
        _validate.check_writeable(name, arr)
    cdef const int16_t[::1] idx = indices
    cdef const int8_t[::1] sgn = signs
    cdef const int32_t[::1] off = offsets
    cdef double[:, ::1] out_logits = logits
    cdef double[::1] out_values = values
    cdef Py_ssize_t t, group, first, count, R = n_rows, H = net.H
    cdef const int16_t* idx_ptr = &idx[0] if idx.shape[0] else NULL
    cdef const int8_t* sgn_ptr = &sgn[0] if sgn.shape[0] else NULL
    cdef double* h
    cdef double* hs = <double*>line_aligned(T * ROW_GROUP * H * sizeof(double))  # a group's hidden layers per thread
    if hs == NULL:
        raise MemoryError()
    with nogil:
        for group in prange((R + ROW_GROUP - 1) // ROW_GROUP, num_threads=T, schedule="static"):
            first = group * ROW_GROUP
            h = hidden_ptr + first * H if hidden_ptr != NULL else hs + threadid() * ROW_GROUP * H
            count = min(ROW_GROUP, R - first)
            for t in range(first, first + count):
                record_row_hidden(&net, idx_ptr, sgn_ptr, &off[0], t, h + (t - first) * H)
            rows_heads(&net, h, count, &out_logits[first, 0], &out_values[first])
    free(hs)


cdef struct RowTerms:
    # What one minibatch row adds to the loss, and its gradient with respect to its logits and value.
    double surrogate, value_term, entropy, clipped, d_value


cdef void row_backward(const Net* net, Py_ssize_t a, double lp_old, double adv, double ret, double clip,
                       double vf_coef, double ent_coef, double scale, const double* h, double value,
                       const double* logits, double* dh, double* logp, double* d_logits,
                       RowTerms* terms) noexcept nogil:
    """One row of ppo_backward's first phase, from its hidden layer h, logits and value: its loss terms,
    d_logits (A,), and dh, the loss gradient with respect to h's pre-activations (zero where the ReLU is
    off)."""
    cdef Py_ssize_t H = net.H, A = net.A, j, k
    cdef double entropy, ratio, clipped, d_logp_a, g
    entropy = log_softmax(logits, logp, A)
    ratio = exp(logp[a] - lp_old)
    clipped = min(max(ratio, 1.0 - clip), 1.0 + clip)
    terms.surrogate = min(ratio * adv, clipped * adv)
    terms.clipped = 0.0
    if ratio * adv <= clipped * adv:
        d_logp_a = -ratio * adv
    else:
        d_logp_a = 0.0
        terms.clipped = 1.0
    terms.value_term = 0.5 * (value - ret) * (value - ret)
    terms.entropy = entropy
    for k in range(A):
        g = exp(logp[k])
        d_logits[k] = (d_logp_a * ((1.0 if k == a else 0.0) - g) + ent_coef * g * (logp[k] + entropy)) * scale
    terms.d_value = vf_coef * (value - ret) * scale
    for j in range(H):
        dh[j] = terms.d_value * net.w_v[j]
    for k in range(A):
        add_scaled(dh, net.W_pi + k * H, d_logits[k], H)
    for j in range(H):
        dh[j] = 0.0 if h[j] <= 0.0 else dh[j]


cdef void zero_units(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t H, Py_ssize_t A, Py_ssize_t n_inputs,
                     double* gW1, double* gW_pi, double* gw_v, double* gb1) noexcept nogil:
    """Zero hidden units start:stop's entries of the gradients of W1 (n_inputs columns), W_pi, w_v and b1."""
    cdef Py_ssize_t n = stop - start, c, k
    if n <= 0:
        return
    if n == H:  # one thread: the whole matrix at once
        memset(gW1, 0, n_inputs * H * sizeof(double))
    else:
        for c in range(n_inputs):
            memset(gW1 + c * H + start, 0, n * sizeof(double))
    for k in range(A):
        memset(gW_pi + k * H + start, 0, n * sizeof(double))
    memset(gw_v + start, 0, n * sizeof(double))
    memset(gb1 + start, 0, n * sizeof(double))


cdef struct ChunkColumns:
    # A chunk's sparse entries grouped by column, for scatter_columns: column q is columns[q], and its
    # entries are pairs starts[q] .. starts[q + 1] - 1, each a row of the chunk and a sign, in row order.
    int32_t* columns
    int32_t* starts
    int16_t* rows  # a row of the chunk: fewer than ROW_CHUNK
    int8_t* signs
    int32_t* slot  # per input: its column's q in this chunk, or -1 (all -1 between chunks)
    Py_ssize_t n_columns


cdef void free_chunk_columns(ChunkColumns* chunk) noexcept nogil:
    free(chunk.columns)
    free(chunk.starts)
    free(chunk.rows)
    free(chunk.signs)
    free(chunk.slot)


cdef void group_by_column(ChunkColumns* chunk, Py_ssize_t first, Py_ssize_t last, const int64_t* rows,
                          const int16_t* idx, const int8_t* sgn, const int32_t* off) noexcept nogil:
    """Group the entries of minibatch rows first:last by column, keeping each column's entries in the order of
    the rows (a stable counting sort): the order in which the row-by-row scatter added them."""
    cdef Py_ssize_t i, e, q, n = 0
    cdef int32_t c
    for i in range(first, last):
        for e in range(off[rows[i]], off[rows[i] + 1]):
            c = idx[e]
            if chunk.slot[c] < 0:
                chunk.slot[c] = n
                chunk.columns[n] = c
                chunk.starts[n + 1] = 0
                n += 1
            chunk.starts[chunk.slot[c] + 1] += 1
    chunk.starts[0] = 0
    for q in range(n):
        chunk.starts[q + 1] += chunk.starts[q]
    for i in range(first, last):  # starts[q] walks forward as column q's entries are placed ...
        for e in range(off[rows[i]], off[rows[i] + 1]):
            q = chunk.slot[idx[e]]
            chunk.rows[chunk.starts[q]] = <int16_t>(i - first)
            chunk.signs[chunk.starts[q]] = sgn[e]
            chunk.starts[q] += 1
    for q in range(n - 1, 0, -1):  # ... to where column q + 1's begin: shift them back
        chunk.starts[q] = chunk.starts[q - 1]
    chunk.starts[0] = 0
    for q in range(n):
        chunk.slot[chunk.columns[q]] = -1
    chunk.n_columns = n


cdef void units_backward(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t H, Py_ssize_t A, Py_ssize_t first,
                         Py_ssize_t last, const ChunkColumns* chunk, const double* hs, const double* dhs,
                         const RowTerms* terms, const double* d_logits, double* gW1, double* gW_pi, double* gw_v,
                         double* gb1) noexcept nogil:
    """ppo_backward's second phase for hidden units start:stop and minibatch rows first:last (whose h and
    dh are hs and dhs, H apart; chunk groups their entries by column): add the rows, in order, to those
    units' entries of the gradients of W1, W_pi, w_v and b1."""
    cdef Py_ssize_t n = stop - start, i, k
    cdef const double* h
    cdef const double* dh
    if n <= 0:
        return
    for i in range(first, last):
        h = hs + (i - first) * H + start
        dh = dhs + (i - first) * H + start
        for k in range(A):
            add_scaled(gW_pi + k * H + start, h, d_logits[i * A + k], n)
        add_scaled(gw_v + start, h, terms[i].d_value, n)
        add_scaled(gb1 + start, dh, 1.0, n)
    scatter_columns(gW1 + start, n, H, dhs + start, H, chunk.columns, chunk.starts, chunk.n_columns, chunk.rows,
                    chunk.signs)


def ppo_backward(params, indices, signs, offsets, rows, choices, logp_old, advantages, returns,
                 double clip, double vf_coef, double ent_coef, grads, threads=1, bint accumulate=False,
                 hidden=None):
    """The gradient of the mean PPO loss over a minibatch, written into grads (zeroed first), or with
    ``accumulate`` added to what they hold (a learner whose Adam clears the gradient as it reads it
    spares a pass over the 10 MB W1 gradient per minibatch). ``hidden``: the record's hidden layers
    that ``actor_critic_forward`` wrote with these very weights, read instead of recomputed (the
    result is the same).

    rows int64 (M,): the record rows of the minibatch; choices uint8 (M,),
    logp_old, advantages, returns float64 (M,) are per minibatch step. grads:
    name -> array shaped as params. The loss is fastpg.reference.ppo_loss's.
    Returns (loss, stats) as it does. ``threads`` split the rows for the
    forward part and the hidden units for the sums over rows (see the module
    docstring), ROW_CHUNK rows at a time.
    """
    cdef Net net = _net(params)
    n_rows = _check_record(indices, signs, offsets, net.n_inputs)
    cdef const double[:, ::1] hidden_view = hidden if _check_hidden(hidden, n_rows, net.H, False) else None
    cdef const double* hidden_ptr = &hidden_view[0, 0] if hidden_view is not None else NULL
    cdef Py_ssize_t T = _validate.thread_count(threads)
    rows = _validate.as_array("rows", rows)
    _validate.check_dtype("rows", rows, np.int64)
    M = rows.shape[0]
    if M < 1:
        raise ValueError("a minibatch needs at least one row")
    if rows.min() < 0 or rows.max() >= n_rows:
        raise ValueError(f"rows must lie in [0, {n_rows}) (rows of the record)")
    _validate.as_array("choices", choices)
    _validate.check_dtype("choices", choices, np.uint8)
    _validate.check_size("choices", choices, 0, M, "minibatch steps, length of rows")
    if choices.max() >= net.A:
        raise ValueError(f"choices must lie in [0, {net.A}) (the policy's outputs)")
    for name, arr in (("logp_old", logp_old), ("advantages", advantages), ("returns", returns)):
        _validate.float_vector(name, arr, M, "minibatch steps, length of rows")
        _validate.check_c_contiguous(name, arr)
    for name in ("W1", "b1", "W_pi", "b_pi", "w_v", "b_v"):
        grad = grads[name]
        if not isinstance(grad, np.ndarray) or grad.dtype != np.float64 or grad.shape != params[name].shape:
            raise ValueError(f"grads[{name!r}] must be float64 {params[name].shape}")
        _validate.check_writeable(f"grads[{name!r}]", grad)
        if not (grad.flags.f_contiguous if name == "W1" else grad.flags.c_contiguous):
            raise ValueError(f"grads[{name!r}] must be laid out as params[{name!r}]")
    cdef double[::1, :] gW1 = grads["W1"]
    cdef double[::1] gb1 = grads["b1"], gb_pi = grads["b_pi"], gw_v = grads["w_v"], gb_v = grads["b_v"]
    cdef double[:, ::1] gW_pi = grads["W_pi"]
    cdef const int16_t[::1] idx = indices
    cdef const int8_t[::1] sgn = signs
    cdef const int32_t[::1] off = offsets
    cdef const int64_t[::1] row_view = np.ascontiguousarray(rows)
    cdef const uint8_t[::1] choice_view = np.ascontiguousarray(choices)
    cdef const double[::1] lp_old = logp_old, adv = advantages, ret = returns
    cdef const int16_t* idx_ptr = &idx[0] if idx.shape[0] else NULL
    cdef const int8_t* sgn_ptr = &sgn[0] if sgn.shape[0] else NULL
    cdef Py_ssize_t H = net.H, A = net.A, i, k, part, first, last, group, start, count
    cdef Py_ssize_t n_steps = M
    cdef double scale = 1.0 / M
    cdef double sum_policy = 0.0, sum_value = 0.0, sum_entropy = 0.0, n_clipped = 0.0
    # h and dh (H each) of ROW_CHUNK rows at a time (cache-sized), and per row its logits, log-probabilities
    # and d_logits (A each), its value and its terms.
    cdef double* work = <double*>line_aligned((2 * ROW_CHUNK * H + (3 * A + 1) * n_steps) * sizeof(double))
    cdef RowTerms* terms = <RowTerms*>malloc(n_steps * sizeof(RowTerms))
    # The most entries any chunk of rows lists, for its grouping by column.
    cdef Py_ssize_t chunk_entries, most_entries = 0
    with nogil:
        first = 0
        while first < n_steps:
            chunk_entries = 0
            for i in range(first, min(n_steps, first + ROW_CHUNK)):
                chunk_entries += off[row_view[i] + 1] - off[row_view[i]]
            most_entries = max(most_entries, chunk_entries)
            first += ROW_CHUNK
    cdef ChunkColumns chunk
    chunk.columns = <int32_t*>malloc(max(most_entries, 1) * sizeof(int32_t))
    chunk.starts = <int32_t*>malloc((most_entries + 1) * sizeof(int32_t))
    chunk.rows = <int16_t*>malloc(max(most_entries, 1) * sizeof(int16_t))
    chunk.signs = <int8_t*>malloc(max(most_entries, 1) * sizeof(int8_t))
    chunk.slot = <int32_t*>malloc(net.n_inputs * sizeof(int32_t))
    if work == NULL or terms == NULL or chunk.columns == NULL or chunk.starts == NULL or chunk.rows == NULL \
            or chunk.signs == NULL or chunk.slot == NULL:
        free_chunk_columns(&chunk)
        free(work)
        free(terms)
        raise MemoryError()
    memset(chunk.slot, 0xff, net.n_inputs * sizeof(int32_t))  # every int32 -1
    cdef double* hs = work
    cdef double* dhs = work + ROW_CHUNK * H
    cdef double* logits = work + 2 * ROW_CHUNK * H
    cdef double* logps = logits + n_steps * A
    cdef double* d_logits = logps + n_steps * A
    cdef double* values = d_logits + n_steps * A
    with nogil:
        for part in prange(0 if accumulate else T, num_threads=T, schedule="static", chunksize=1):
            zero_units(part_start(H, part, T), part_start(H, part + 1, T), H, A, net.n_inputs, &gW1[0, 0],
                       &gW_pi[0, 0], &gw_v[0], &gb1[0])
        first = 0
        while first < n_steps:
            last = min(n_steps, first + ROW_CHUNK)
            for group in prange((last - first + ROW_GROUP - 1) // ROW_GROUP, num_threads=T, schedule="static"):
                start = first + group * ROW_GROUP
                count = min(ROW_GROUP, last - start)
                for i in range(start, start + count):
                    if hidden_ptr != NULL:
                        memcpy(hs + (i - first) * H, hidden_ptr + row_view[i] * H, H * sizeof(double))
                    else:
                        record_row_hidden(&net, idx_ptr, sgn_ptr, &off[0], row_view[i], hs + (i - first) * H)
                rows_heads(&net, hs + (start - first) * H, count, logits + start * A, values + start)
                for i in range(start, start + count):
                    row_backward(&net, choice_view[i], lp_old[i], adv[i], ret[i], clip, vf_coef, ent_coef, scale,
                                 hs + (i - first) * H, values[i], logits + i * A, dhs + (i - first) * H,
                                 logps + i * A, d_logits + i * A, &terms[i])
            group_by_column(&chunk, first, last, &row_view[0], idx_ptr, sgn_ptr, &off[0])
            for part in prange(T, num_threads=T, schedule="static", chunksize=1):
                units_backward(part_start(H, part, T), part_start(H, part + 1, T), H, A, first, last, &chunk, hs,
                               dhs, terms, d_logits, &gW1[0, 0], &gW_pi[0, 0], &gw_v[0], &gb1[0])
            first = last
        # The scalar sums, in row order.
        if not accumulate:
            gb_pi[:] = 0.0
            gb_v[0] = 0.0
        for i in range(n_steps):
            sum_policy -= terms[i].surrogate
            sum_value += terms[i].value_term
            sum_entropy += terms[i].entropy
            n_clipped += terms[i].clipped
            for k in range(A):
                gb_pi[k] += d_logits[i * A + k]
            gb_v[0] += terms[i].d_value
    free_chunk_columns(&chunk)
    free(work)
    free(terms)
    loss = (sum_policy + vf_coef * sum_value - ent_coef * sum_entropy) / M
    stats = {"policy_loss": sum_policy / M, "value_loss": sum_value / M, "entropy": sum_entropy / M,
             "clip_fraction": n_clipped / M}
    return loss, stats


def touched_columns(indices, offsets, rows):
    """The sorted distinct inputs (int64) that the given rows (int64) of a sparse record list (see
    fastpg.reference.touched_columns): a minibatch's columns for the lazy ``adam_update``."""
    n_rows = _check_offsets(indices, offsets)
    if indices.shape[0] and indices.min() < 0:
        raise ValueError("indices must not be negative")
    rows = _validate.as_array("rows", rows)
    _validate.check_dtype("rows", rows, np.int64)
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must lie in [0, {n_rows}) (rows of the record)")
    cdef const int16_t[::1] idx = indices
    cdef const int32_t[::1] off = offsets
    cdef const int64_t[::1] row_view = np.ascontiguousarray(rows)
    cdef uint8_t[::1] seen = np.zeros(INPUT_LIMIT, dtype=np.uint8)
    cdef Py_ssize_t r, e, c, n = 0
    with nogil:
        for r in range(row_view.shape[0]):
            for e in range(off[row_view[r]], off[row_view[r] + 1]):
                if not seen[idx[e]]:
                    seen[idx[e]] = 1
                    n += 1
    columns = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = columns
    n = 0
    with nogil:
        for c in range(INPUT_LIMIT):
            if seen[c]:
                out[n] = c
                n += 1
    return columns


def adam_update(w, g, m, v, long step, double learning_rate, double beta1=0.9, double beta2=0.999,
                double eps=1e-8, threads=1, bint clear_gradient=False, columns=None):
    """In place, Adam's descent step number ``step`` (see fastpg.reference.adam_update, also for
    ``clear_gradient`` and ``columns``). Any memory order shared by all four arrays, Fortran's for
    ``columns`` (strictly increasing int64); ``threads`` split the weights. Returns whether every new
    value of w, m and v is finite."""
    if columns is not None:
        return _lazy_adam_update(w, g, m, v, step, learning_rate, beta1, beta2, eps, threads, clear_gradient,
                                 columns)
    cdef Py_ssize_t T = _validate.thread_count(threads)
    _check_adam_arrays(w, g, m, v, step, clear_gradient, lazy=False)
    if w.ndim > 1 and any(arr.flags.c_contiguous != w.flags.c_contiguous for arr in (g, m, v)):
        raise ValueError("w, g, m and v must share one memory order")
    cdef double[::1] w_flat = w.reshape(-1, order="A")
    cdef const double[::1] g_flat = g.reshape(-1, order="A")  # written only with clear_gradient (checked above)
    cdef double[::1] m_flat = m.reshape(-1, order="A")
    cdef double[::1] v_flat = v.reshape(-1, order="A")
    cdef double m_scale = 1.0 / (1.0 - pow(beta1, step)), v_scale = 1.0 / (1.0 - pow(beta2, step))
    cdef Py_ssize_t n = w_flat.shape[0], part, start, stop
    if n < SERIAL_ADAM:
        T = 1
    cdef int finite = 1
    with nogil:
        for part in prange(T, num_threads=T, schedule="static", chunksize=1):
            start = part_start(n, part, T)
            stop = part_start(n, part + 1, T)
            if stop > start:
                finite &= adam_step(&w_flat[start], <double*>&g_flat[start], &m_flat[start], &v_flat[start],
                                    stop - start, learning_rate, beta1, beta2, eps, m_scale, v_scale, clear_gradient)
    return bool(finite)


def _check_adam_arrays(w, g, m, v, long step, bint clear_gradient, bint lazy):
    """Adam's float64 arrays, shaped as w and writeable (g only when cleared): any contiguous layout, or for
    a lazy step on columns 2-D and Fortran-ordered."""
    for name, arr in (("w", w), ("g", g), ("m", m), ("v", v)):
        _validate.as_array(name, arr)
        _validate.check_dtype(name, arr, np.float64)
        if lazy:
            if arr.ndim != 2 or arr.shape != w.shape:
                raise ValueError(f"{name} must be 2-D, shaped as w {w.shape}, for a lazy step on columns")
            if not arr.flags.f_contiguous:
                raise ValueError(f"{name} must be Fortran-ordered for a lazy step on columns (each column contiguous)")
        else:
            if arr.shape != w.shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected the shape of w {w.shape}")
            if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
                raise ValueError(f"{name} must be contiguous")
        if arr is not g or clear_gradient:
            _validate.check_writeable(name, arr)
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")


def _lazy_adam_update(w, g, m, v, long step, double learning_rate, double beta1, double beta2, double eps,
                      threads, bint clear_gradient, columns):
    cdef Py_ssize_t T = _validate.thread_count(threads)
    _check_adam_arrays(w, g, m, v, step, clear_gradient, lazy=True)
    columns = _validate.as_array("columns", columns)
    _validate.check_dtype("columns", columns, np.int64)
    if columns.ndim != 1:
        raise ValueError(f"columns must be 1-D, got shape {columns.shape}")
    if columns.shape[0] and (columns[0] < 0 or columns[-1] >= w.shape[1] or (np.diff(columns) <= 0).any()):
        raise ValueError(f"columns must be strictly increasing and lie in [0, {w.shape[1]})")
    cdef double[::1] w_flat = w.reshape(-1, order="F")
    cdef const double[::1] g_flat = g.reshape(-1, order="F")  # written only with clear_gradient (checked above)
    cdef double[::1] m_flat = m.reshape(-1, order="F")
    cdef double[::1] v_flat = v.reshape(-1, order="F")
    cdef const int64_t[::1] cols = np.ascontiguousarray(columns)
    cdef double m_scale = 1.0 / (1.0 - pow(beta1, step)), v_scale = 1.0 / (1.0 - pow(beta2, step))
    cdef Py_ssize_t H = w.shape[0], n = cols.shape[0], part, k, at
    if n * H < SERIAL_ADAM:
        T = 1
    cdef int finite = 1
    with nogil:
        for part in prange(T, num_threads=T, schedule="static", chunksize=1):
            for k in range(n * part // T, n * (part + 1) // T):
                at = cols[k] * H
                finite &= adam_step(&w_flat[at], <double*>&g_flat[at], &m_flat[at], &v_flat[at], H,
                                    learning_rate, beta1, beta2, eps, m_scale, v_scale, clear_gradient)
    return bool(finite)
