"""preprocess: compiled equals the numpy reference exactly, on real and random frames."""
import numpy as np
import pytest

from fastpg import kernels, reference

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]


def test_compiled_equals_reference_on_real_frames(pong_frames):
    for t, frame in enumerate(pong_frames):
        expected = reference.preprocess(frame)
        np.testing.assert_array_equal(kernels.preprocess(frame), expected, err_msg=f"frame {t}")
    # The frames show something: paddles, ball and score are foreground.
    assert 0 < reference.preprocess(pong_frames[-1]).sum() < 6400


def test_compiled_equals_reference_on_random_frames(rng):
    # Every byte value, including the background colours 144 and 109 and 0.
    for _ in range(20):
        frame = rng.integers(0, 256, size=(210, 160, 3), dtype=np.uint8)
        frame[35:195:2, ::2, 0].flat[:6] = [0, 109, 144, 108, 110, 255]
        np.testing.assert_array_equal(kernels.preprocess(frame), reference.preprocess(frame))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_built_frame(backend):
    frame = np.zeros((210, 160, 3), dtype=np.uint8)
    frame[35, 0, 0] = 144  # background -> 0
    frame[35, 2, 0] = 109  # background -> 0
    frame[35, 4, 0] = 1  # foreground -> pixel (0, 2)
    frame[37, 6, 0] = 255  # foreground -> pixel (1, 3)
    frame[193, 158, 0] = 200  # last kept row and column -> pixel (79, 79)
    frame[36, 8, 0] = 255  # odd row: dropped
    frame[35, 9, 0] = 255  # odd column: dropped
    frame[35, 10, 1:] = 255  # green and blue: ignored
    frame[34, 12, 0] = 255  # above the playfield: dropped
    frame[195, 12, 0] = 255  # below the playfield: dropped
    expected = np.zeros(6400)
    expected[[0 * 80 + 2, 1 * 80 + 3, 79 * 80 + 79]] = 1.0

    out = backend.preprocess(frame)

    assert out.dtype == np.float64 and out.shape == (6400,) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_not_mutated_and_read_only_accepted(backend, pong_frames):
    frame = pong_frames[100]
    assert not frame.flags.writeable  # the fixture's frames are read-only
    before = frame.copy()
    first = backend.preprocess(frame)
    second = backend.preprocess(frame)
    np.testing.assert_array_equal(frame, before)
    assert first is not second and not np.shares_memory(first, second)
    first[:] = -1.0  # the result is the caller's to change
    np.testing.assert_array_equal(second, reference.preprocess(frame))
