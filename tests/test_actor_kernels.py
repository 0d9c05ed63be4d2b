"""The actor-critic's kernels: palette preprocessing, ActorStepper, the batched sparse forward,
ppo_backward and adam_update, compiled against their numpy twins and the reference.

The steppers play real Pong palette screens (ALE/Pong-v5); the forward and the backward
are also checked on random sparse records, and the reference's gradient by finite differences.
"""
import numpy as np
import pytest

from fastpg import kernels, reference
from fastpg.backends import densify, get_backend
from fastpg.env import AtariGame
from fastpg.policy import ActorCriticSpec

from helpers import expanded

N_PIXELS = 6400
N_SCREENS = 300
PARAM_NAMES = ("W1", "b1", "W_pi", "b_pi", "w_v", "b_v")
BACKEND_NAMES = ("cython", "numpy")
# The policy's game actions: Pong's up/down (A = 2), and noop/up/down (A = 3).
ACTION_SETS = [pytest.param((2, 3), id="A2"), pytest.param((0, 2, 3), id="A3")]
# The played script's networks: both action sets on the difference frame, and A = 2 seeing the frame too.
PLAYED_NETWORKS = [pytest.param(((2, 3), "difference"), id="A2"), pytest.param(((0, 2, 3), "difference"), id="A3"),
                   pytest.param(((2, 3), "difference+frame"), id="A2-frame")]


# ---------------------------------------------------------------- inputs


def actor_params(actions, hidden=32, seed=0, inputs="difference"):
    """ActorCriticSpec's initial parameters with W_pi, b_pi (and b1, b_v) made large enough
    that the policy is far from uniform and varies between screens."""
    spec = ActorCriticSpec(hidden, actions=actions, inputs=inputs)
    params = spec.initial_parameters(seed)
    rng = np.random.default_rng(seed + 100)
    params["W_pi"][...] = 40.0 * rng.standard_normal(params["W_pi"].shape)
    params["b_pi"][...] = 0.3 * rng.standard_normal(params["b_pi"].shape)
    params["b1"][...] = 0.01 * rng.standard_normal(hidden)
    params["b_v"][...] = 0.5
    return spec, params


def random_record(rng, n_rows, mean_nnz=22, empty_rows=()):
    """A sparse record as the steppers write it: per row unique int16 pixels with int8 signs of +-1."""
    counts = rng.poisson(mean_nnz, size=n_rows)
    counts[list(empty_rows)] = 0
    indices = [np.sort(rng.choice(N_PIXELS, size=c, replace=False)) for c in counts]
    return {
        "indices": np.concatenate([np.empty(0, np.int64)] + indices).astype(np.int16),
        "signs": rng.choice(np.array([-1, 1], dtype=np.int8), size=int(counts.sum())),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
    }


def record_args(record):
    return record["indices"], record["signs"], record["offsets"]


def dense(record, params=None):
    """The record's rows as dense inputs, as wide as params' W1 (None: the difference frame alone)."""
    return densify(record, 0, len(record["offsets"]) - 1, N_PIXELS if params is None else params["W1"].shape[1])


def forward_scale(params, x):
    """The size of the terms summed into logits and values (for entries that cancel to near 0)."""
    h = np.abs(x) @ np.abs(params["W1"]).T + np.abs(params["b1"])
    return (np.max(h @ np.abs(params["W_pi"]).T + np.abs(params["b_pi"]), initial=0.0),
            np.max(h @ np.abs(params["w_v"]) + np.abs(params["b_v"][0]), initial=0.0))


def zero_grads(params, fill=np.nan):
    """Gradient buffers laid out as params, pre-filled with garbage."""
    return {name: np.full_like(arr, fill, order="K") for name, arr in params.items()}


# ---------------------------------------------------------------- real palette screens


class Replay:
    """Recorded Pong screens standing in for an AtariGame: fill_lut reads screen ``t``."""

    def __init__(self, screens, rgbs):
        self.screens, self.rgbs = screens, rgbs
        self.t = 0
        self.fills = []  # the t of every fill_lut call

    def fill_lut(self, lut, is_foreground):
        self.fills.append(self.t)
        lut[self.screens[self.t].ravel()] = is_foreground(self.rgbs[self.t][..., 0].ravel())


@pytest.fixture(scope="module")
def pong_screens():
    """301 palette screens (uint8 (210, 160)) and their RGB frames, random noop/up/down play (read-only)."""
    game = AtariGame("ALE/Pong-v5", screen="palette")
    rng = np.random.default_rng(3)
    screens, rgbs = [game.reset(rng).copy()], [game.rgb().copy()]
    for _ in range(N_SCREENS):
        screen, _, done = game.step(int(rng.choice([0, 2, 3])))
        assert not done
        screens.append(screen.copy())
        rgbs.append(game.rgb().copy())
    for arr in screens + rgbs:
        arr.setflags(write=False)
    return screens, rgbs


def test_preprocess_palette_equals_rgb_preprocess_on_real_play():
    game = AtariGame("ALE/Pong-v5", screen="palette")
    rng = np.random.default_rng(5)
    lut = np.full(256, 2, dtype=np.uint8)
    screen = game.reset(rng)
    fills, foreground = 0, []
    for t in range(400):
        try:
            x = reference.preprocess_palette(screen, lut)
        except ValueError as exc:
            assert "no entry" in str(exc)
            game.fill_lut(lut, reference.is_foreground)
            fills += 1
            x = reference.preprocess_palette(screen, lut)
        expected = reference.preprocess(game.rgb())
        assert x.dtype == np.float64 and x.shape == (N_PIXELS,)
        np.testing.assert_array_equal(x, expected, err_msg=f"step {t}")
        foreground.append(int(expected.sum()))
        screen, _, done = game.step(int(rng.choice([0, 2, 3])))
        assert not done
    assert 2 <= fills <= 10  # colours appear as the game goes on, and are then known
    assert set(np.unique(lut)) <= {0, 1, 2} and np.count_nonzero(lut == 1) >= 2
    assert min(foreground) > 0 and len(set(foreground)) > 5  # non-trivial, changing frames


def test_preprocess_palette_unknown_colour_raises(pong_screens):
    screens, rgbs = pong_screens
    screen = screens[50]
    lut = np.full(256, 2, dtype=np.uint8)
    with pytest.raises(ValueError, match="lut has no entry for a colour on this screen"):
        reference.preprocess_palette(screen, lut)
    lut[screen.ravel()] = reference.is_foreground(rgbs[50][..., 0].ravel())
    np.testing.assert_array_equal(reference.preprocess_palette(screen, lut), reference.preprocess(rgbs[50]))
    # Only the sampled pixels need entries: an unknown colour in row 0 or an odd column is ignored.
    odd = screen.copy()
    unknown = next(i for i in range(256) if lut[i] == 2)
    odd[[0, 34, 194], :] = unknown  # rows outside 35, 37, ..., 193
    odd[101, 1::2] = unknown  # a sampled row's odd columns
    np.testing.assert_array_equal(reference.preprocess_palette(odd, lut), reference.preprocess(rgbs[50]))
    odd[101, 0] = unknown  # row 101 = 35 + 2 * 33, column 0: sampled
    with pytest.raises(ValueError, match="no entry"):
        reference.preprocess_palette(odd, lut)


# ---------------------------------------------------------------- ActorStepper against its numpy twin

# t -> what happens before (or after) stepping screen t, in the ways lanes.py drives the stepper.
EVENTS = {
    40: "peek, finish",          # a segment ends on screen 40 (valued), the next one starts there
    60: "greedy", 61: "greedy", 62: "greedy",
    100: "new_episode",          # an episode ended: screen 100 has no difference
    200: "new_episode, peek, finish",
    250: "restore",              # a lane restored: previous set from the frame saved at t = 40
    260: "forget",               # previous = None: a zero difference
    299: "peek",
}


def play_script(stepper, replay, uniforms):
    """Step every screen with the events above; returns what was observed along the way."""
    out = {"actions": [], "choices_seen": [], "probs": [], "previous": [], "nnz": [], "records": [],
           "n_steps": [], "saved": None}
    for t, screen in enumerate(replay.screens):
        replay.t = t
        event = EVENTS.get(t, "")
        if "new_episode" in event:
            stepper.new_episode()
            assert stepper.previous is None
        if "restore" in event:
            stepper.previous = out["saved"]
            np.testing.assert_array_equal(stepper.previous, out["saved"])
        if "forget" in event:
            stepper.previous = None
            assert stepper.previous is None
        if "peek" in event:
            before = stepper.previous
            n_steps = stepper.n_steps
            stepper.peek(screen)
            after = stepper.previous
            assert (before is None and after is None) or np.array_equal(before, after)  # peek keeps prev
            assert stepper.n_steps == n_steps
            out["previous"].append(after)
        if "finish" in event:
            out["n_steps"].append(stepper.n_steps)
            out["records"].append(stepper.finish())
            assert stepper.n_steps == 0
        action = stepper.step(screen, uniforms[t])
        out["choices_seen"].append(stepper.choice)
        if "greedy" in event:
            action = stepper.greedy()
        out["actions"].append(action)
        out["probs"].append(np.array(stepper.probs, dtype=np.float64))
        out["nnz"].append(stepper.nnz)
        previous = stepper.previous
        assert previous.dtype == np.uint8 and previous.shape == (N_PIXELS,)
        out["previous"].append(previous.copy())
        if t == 40:
            out["saved"] = previous.copy()
    out["n_steps"].append(stepper.n_steps)
    out["records"].append(stepper.finish())
    return out


def expected_rows(replay, with_frame=False):
    """(dense rows, is_peek) of the whole script, from the RGB frames and reference.preprocess."""
    rows, peeks, previous, saved = [], [], None, None
    for t, rgb in enumerate(replay.rgbs):
        event = EVENTS.get(t, "")
        current = reference.preprocess(rgb)
        if "new_episode" in event or "forget" in event:
            previous = None
        if "restore" in event:
            previous = saved
        if "peek" in event:
            rows.append(reference.actor_input(current, previous, with_frame))
            peeks.append(True)
        rows.append(reference.actor_input(current, previous, with_frame))
        peeks.append(False)
        previous = current
        if t == 40:
            saved = current
    return np.array(rows), np.array(peeks)


def expected_keyframes(replay):
    """Which rows of the script list their frame in a compact record: those whose difference was not taken
    against the row before's frame (a record's first row, an episode's, after previous was set or a peek)."""
    keys, chained = [], False
    for t in range(len(replay.screens)):
        event = EVENTS.get(t, "")
        if any(word in event for word in ("new_episode", "restore", "forget")):
            chained = False
        if "peek" in event:
            keys.append(not chained)
            chained = False
        if "finish" in event:
            chained = False
        keys.append(not chained)
        chained = True
    return np.array(keys)


@pytest.fixture(scope="module", params=PLAYED_NETWORKS)
def played(request, pong_screens):
    """The script played by the compiled stepper and its numpy twin on the same screens and draws."""
    actions, inputs = request.param
    spec, params = actor_params(actions, inputs=inputs)
    screens, rgbs = pong_screens
    uniforms = np.random.default_rng(11).random(len(screens))
    results = {}
    for name in BACKEND_NAMES:
        replay = Replay(screens, rgbs)
        stepper = spec.stepper(get_backend(name), params, replay)
        results[name] = play_script(stepper, replay, uniforms)
        results[name]["fills"] = replay.fills
    return dict(spec=spec, params=params, uniforms=uniforms, replay=Replay(screens, rgbs), **results)


def joined(records):
    """One record from consecutive ones."""
    offsets = [np.zeros(1, np.int32)]
    for record in records:
        offsets.append(record["offsets"][1:] + offsets[-1][-1])
    return {**{key: np.concatenate([r[key] for r in records]) for key in records[0] if key != "offsets"},
            "offsets": np.concatenate(offsets)}



def test_steppers_play_identically(played):
    compiled, twin = played["cython"], played["numpy"]
    assert compiled["actions"] == twin["actions"]
    assert compiled["choices_seen"] == twin["choices_seen"]
    assert compiled["nnz"] == twin["nnz"]
    assert compiled["n_steps"] == twin["n_steps"] == [40, 160, 101]
    assert compiled["fills"] == twin["fills"] and 2 <= len(compiled["fills"]) <= 10
    assert len(compiled["previous"]) == len(twin["previous"])
    for a, b in zip(compiled["previous"], twin["previous"]):
        assert (a is None and b is None) or np.array_equal(a, b)
    np.testing.assert_allclose(np.array(compiled["probs"]), np.array(twin["probs"]), rtol=1e-12, atol=0)
    assert len(compiled["records"]) == len(twin["records"]) == 3
    keys = {"indices", "signs", "offsets", "choices", "logp"}
    if played["spec"].inputs == "difference+frame":
        keys.add("keyframes")
    for a, b in zip(compiled["records"], twin["records"]):
        assert set(a) == set(b) == keys
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            if key == "logp":  # the policy's arithmetic: equal up to rounding, NaN at the same (peeked) rows
                np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-14, err_msg=key)
            else:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stepper_policy_is_not_trivial(played):
    probs = np.array(played["cython"]["probs"])
    A = len(played["spec"].actions)
    assert probs.shape == (N_SCREENS + 1, A)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(np.ptp(probs, axis=0) > 0.3)  # far from uniform, and changing with the screen
    assert set(played["cython"]["actions"]) == set(played["spec"].actions)


def test_stepper_record_is_the_rgb_difference_frames(played):
    """The record's rows are the difference frames of the RGB screens (and the frames themselves, after
    them, for a network that sees the frame, once its compact record is expanded)."""
    record = expanded(joined(played["cython"]["records"]))
    with_frame = played["spec"].inputs == "difference+frame"
    rows, peeks = expected_rows(played["replay"], with_frame)
    assert record["indices"].dtype == np.int16 and record["signs"].dtype == np.int8
    assert record["offsets"].dtype == np.int32 and record["choices"].dtype == np.uint8
    np.testing.assert_array_equal(dense(record, played["params"]), rows)
    assert set(np.unique(record["signs"])) == {-1, 1}
    np.testing.assert_array_equal(record["choices"] == 255, peeks)
    difference = rows[:, :N_PIXELS]
    assert np.count_nonzero(difference.any(axis=1)) > 0.8 * len(rows)
    lengths = np.diff(record["offsets"])
    if not with_frame:
        # zero rows exactly where no difference is taken: the start, episode starts, forgotten previous
        np.testing.assert_array_equal(lengths == 0, ~difference.any(axis=1))
        assert lengths[0] == 0
    else:  # every row lists its difference's entries, then the frame's foreground as entries 6400 + i, sign +1
        assert np.all(rows[:, N_PIXELS:].any(axis=1))  # Pong always shows a paddle
        for t in range(len(rows)):
            entries = slice(record["offsets"][t], record["offsets"][t + 1])
            indices, signs = record["indices"][entries], record["signs"][entries]
            n_diff = np.count_nonzero(difference[t])
            assert np.all(indices[:n_diff] < N_PIXELS) and np.all(indices[n_diff:] >= N_PIXELS), t
            assert np.all(signs[n_diff:] == 1) and np.all(np.diff(indices[n_diff:]) > 0), t


def test_frame_record_is_compact(played):
    """A frame-seeing stepper lists a row's frame only where the row before is not the frame its difference
    was taken against; the compiled expansion rebuilds the same full record as the reference's."""
    if played["spec"].inputs != "difference+frame":
        pytest.skip("only a network that sees the frame records keyframes")
    record = joined(played["cython"]["records"])
    keys = expected_keyframes(played["replay"])
    np.testing.assert_array_equal(record["keyframes"], keys)
    assert record["keyframes"].dtype == np.uint8 and 5 <= keys.sum() <= 10  # a handful of 305 rows
    lengths = np.diff(record["offsets"])
    full = expanded(record)
    for t in np.flatnonzero(~keys):
        row = record["indices"][record["offsets"][t]:record["offsets"][t + 1]]
        assert np.all(row < N_PIXELS), t
    for t in np.flatnonzero(keys):  # a keyframe row is already whole
        np.testing.assert_array_equal(lengths[t], np.diff(full["offsets"])[t])
    assert len(full["indices"]) > 2 * len(record["indices"])  # the frame is most of a full record
    compiled = kernels.expand_frame_record(*record_args(record), record["keyframes"])
    for name, a, b in zip(("indices", "signs", "offsets"), compiled, record_args(full)):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    for record in played["cython"]["records"]:  # each segment's record expands on its own, as the learner's
        assert record["keyframes"][0] == 1


def frame_record(rows, keyframes):
    """A hand-written compact frame record: rows of (index, sign) pairs."""
    return ({"indices": np.array([i for row in rows for i, _ in row], dtype=np.int16),
             "signs": np.array([s for row in rows for _, s in row], dtype=np.int8),
             "offsets": np.array([0, *np.cumsum([len(row) for row in rows])], dtype=np.int32)},
            np.array(keyframes, dtype=np.uint8))


@pytest.mark.parametrize("expand", [kernels.expand_frame_record, reference.expand_frame_record],
                         ids=["compiled", "reference"])
def test_expand_frame_record_rules_and_errors(expand):
    # frames: {5, 10} listed; then + 3 - 10 = {3, 5}; unchanged; then - 5 = {3}
    record, keys = frame_record([[(7, 1), (6405, 1), (6410, 1)], [(3, 1), (10, -1)], [], [(5, -1)]], [1, 0, 0, 0])
    indices, signs, offsets = expand(*record_args(record), keys)
    assert offsets.tolist() == [0, 3, 7, 9, 11]
    assert indices.tolist() == [7, 6405, 6410, 3, 10, 6403, 6405, 6403, 6405, 5, 6403]
    assert signs.tolist() == [1, 1, 1, 1, -1, 1, 1, 1, 1, -1, 1]
    empty = expand(np.empty(0, np.int16), np.empty(0, np.int8), np.zeros(1, np.int32), np.empty(0, np.uint8))
    assert [len(a) for a in empty] == [0, 0, 1]
    errors = [
        ([[(5, 1)], [(6405, 1)]], [1, 0], "row 1 is not a keyframe but lists frame entries"),
        ([[(6405, 1)], [(6, -1)]], [1, 0], "row 1's difference does not apply to the frame before it"),
        ([[(6405, 1)], [(3, 1)], [(3, 1)]], [1, 0, 0], "row 2's difference does not apply"),
        ([[(6405, 1)]], [0], "first row must be a keyframe"),
        ([[(6405, 1)]], [1, 0], r"keyframes must have one entry per row \(1\)"),
    ]
    for rows, keys, message in errors:
        record, keyframes = frame_record(rows, keys)
        with pytest.raises(ValueError, match=message):
            expand(*record_args(record), keyframes)


def test_expand_frame_record_agrees_with_the_reference_on_random_records():
    """The compiled expansion merges each chained row's difference into the foreground list it keeps; a
    random walk of frames, with keyframes and some rows listed in descending order (which it scans
    instead), must expand exactly as the reference's."""
    rng = np.random.default_rng(0)
    rows, keys, frame = [], [], set()
    for t in range(400):
        if t == 0 or rng.random() < 0.05:
            frame = {int(i) for i in rng.choice(N_PIXELS, size=int(rng.integers(0, 40)), replace=False)}
            difference = [(int(i), int(rng.choice([-1, 1])))
                          for i in sorted(rng.choice(N_PIXELS, size=int(rng.integers(0, 5)), replace=False))]
            rows.append(difference + [(N_PIXELS + i, 1) for i in sorted(frame)])
            keys.append(1)
            continue
        off = {int(i) for i in rng.choice(sorted(frame), size=min(len(frame), int(rng.integers(0, 4))),
                                          replace=False)} if frame else set()
        on = {int(i) for i in rng.choice(N_PIXELS, size=int(rng.integers(0, 4)), replace=False)} - frame
        difference = sorted([(i, -1) for i in off] + [(i, 1) for i in on])
        if rng.random() < 0.1:
            difference = difference[::-1]
        frame = (frame - off) | on
        rows.append(difference)
        keys.append(0)
    record, keyframes = frame_record(rows, keys)
    assert 10 < keyframes.sum() < 40
    compiled = kernels.expand_frame_record(*record_args(record), keyframes)
    expected = reference.expand_frame_record(*record_args(record), keyframes)
    for name, a, b in zip(("indices", "signs", "offsets"), compiled, expected):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_stepper_choices_follow_the_draws_and_greedy_the_argmax(played):
    out, spec = played["cython"], played["spec"]
    choices = joined(out["records"])["choices"]
    stepped = choices[choices != 255]
    assert len(stepped) == N_SCREENS + 1
    actions = np.array(spec.actions)
    for t, (p, u) in enumerate(zip(out["probs"], played["uniforms"])):
        drawn = min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)
        assert out["choices_seen"][t] == drawn, t  # the first output whose cumulative probability exceeds u
        if EVENTS.get(t) == "greedy":
            assert stepped[t] == np.argmax(p) and out["actions"][t] == actions[np.argmax(p)]
        else:
            assert stepped[t] == drawn and out["actions"][t] == actions[drawn]
    assert any(out["choices_seen"][t] != np.argmax(out["probs"][t]) for t in range(N_SCREENS))  # sampled, not greedy


def test_stepper_probs_match_the_reference_forward(played):
    """The step's probabilities are the softmax of reference.actor_critic_forward on the recorded row."""
    record = expanded(joined(played["cython"]["records"]))
    x = dense(record, played["params"])[record["choices"] != 255]
    logits, _, _ = reference.actor_critic_forward(played["params"], x)
    np.testing.assert_allclose(np.array(played["cython"]["probs"]), np.exp(reference.log_softmax(logits)),
                               rtol=1e-12)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_stepper_records_the_log_probability_of_each_choice(played, name):
    """logp is the log-probability the step gave the recorded choice (the greedy one after greedy()),
    NaN exactly at the peeked rows."""
    record = joined(played[name]["records"])
    stepped = record["choices"] != 255
    np.testing.assert_array_equal(np.isnan(record["logp"]), ~stepped)
    probs = np.array(played[name]["probs"])
    chosen = record["choices"][stepped]
    np.testing.assert_allclose(np.exp(record["logp"][stepped]), probs[np.arange(len(chosen)), chosen], rtol=1e-12)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_live_play_on_a_palette_game(name):
    """ActorCriticSpec.stepper on a real AtariGame: the same actions as the twin on a second emulator."""
    spec, params = actor_params((0, 2, 3), hidden=16, seed=1)
    other = "numpy" if name == "cython" else "cython"
    games = [AtariGame("ALE/Pong-v5", screen="palette") for _ in range(2)]
    steppers = [spec.stepper(get_backend(n), params, g) for n, g in zip((name, other), games)]
    screens = [g.reset(np.random.default_rng(9)) for g in games]
    draws = np.random.default_rng(10).random(120)
    for u in draws:
        actions = [s.step(screen, u) for s, screen in zip(steppers, screens)]
        assert actions[0] == actions[1]
        screens = [g.step(actions[0])[0] for g in games]
    records = [s.finish() for s in steppers]
    for key in records[0]:
        if key == "logp":  # the policy's arithmetic, up to rounding
            np.testing.assert_allclose(records[0][key], records[1][key], rtol=1e-12, atol=1e-14, err_msg=key)
        else:
            np.testing.assert_array_equal(records[0][key], records[1][key], err_msg=key)
    assert len(records[0]["choices"]) == 120 and len(set(records[0]["choices"])) == 3


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_stepper_previous_and_new_episode(name, pong_screens):
    screens, rgbs = pong_screens
    spec, params = actor_params((2, 3))
    replay = Replay(screens, rgbs)
    stepper = spec.stepper(get_backend(name), params, replay)
    frames = [reference.preprocess(rgb).astype(np.uint8) for rgb in rgbs[:12]]

    def step(t):
        replay.t = t
        return stepper.step(screens[t], 0.5)

    assert stepper.previous is None and stepper.n_steps == 0
    step(5)
    np.testing.assert_array_equal(stepper.previous, frames[5])
    stepper.previous = frames[2]  # as a lane restores a saved state
    np.testing.assert_array_equal(stepper.previous, frames[2])
    step(6)
    stepper.new_episode()
    assert stepper.previous is None
    step(7)
    np.testing.assert_array_equal(stepper.previous, frames[7])
    step(8)
    stepper.previous = None
    step(9)
    assert stepper.n_steps == 5
    record = stepper.finish()
    np.testing.assert_array_equal(stepper.previous, frames[9])  # finish keeps the previous frame
    x = dense(record)
    assert x.shape == (5, N_PIXELS)
    np.testing.assert_array_equal(x[0], 0.0)  # the first screen: no previous
    np.testing.assert_array_equal(x[1], frames[6] - frames[2].astype(float))
    assert not np.array_equal(x[1], frames[6] - frames[5].astype(float))
    np.testing.assert_array_equal(x[2], 0.0)  # a new episode
    np.testing.assert_array_equal(x[3], frames[8] - frames[7].astype(float))
    np.testing.assert_array_equal(x[4], 0.0)  # previous = None
    step(10)  # after finish: the difference against the kept frame
    np.testing.assert_array_equal(dense(stepper.finish())[0], frames[10] - frames[9].astype(float))
    for bad in (np.zeros(6399, np.uint8), np.full(N_PIXELS, 2, np.uint8)):
        with pytest.raises(ValueError, match="previous must be a"):
            stepper.previous = bad
    np.testing.assert_array_equal(stepper.previous, frames[10])  # unchanged by the refused values
    stepper.reset()
    assert stepper.previous is None and stepper.n_steps == 0
    empty = stepper.finish()
    np.testing.assert_array_equal(empty["offsets"], [0])
    assert empty["indices"].size == empty["signs"].size == empty["choices"].size == 0


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_stepper_greedy_needs_a_step_to_replace(name, pong_screens):
    """greedy() rewrites the last step's choice: with no step (or a peeked row) last, it refuses."""
    screens, rgbs = pong_screens
    spec, params = actor_params((0, 2, 3))
    replay = Replay(screens, rgbs)
    stepper = spec.stepper(get_backend(name), params, replay)
    with pytest.raises(ValueError, match="call it right after step"):
        stepper.greedy()  # nothing recorded yet (the compiled stepper used to write before its buffer)
    drawn = []
    for t in (0, 1):
        replay.t = t
        stepper.step(screens[t], 0.999)
        drawn.append(stepper.choice)
    best = int(np.argmax(stepper.probs))
    assert stepper.greedy() == spec.actions[best] and stepper.choice == best
    replay.t = 2
    stepper.peek(screens[2])
    with pytest.raises(ValueError, match="call it right after step"):
        stepper.greedy()  # the last row is a peek: its 255 stays
    record = stepper.finish()
    np.testing.assert_array_equal(record["choices"], [drawn[0], best, 255])
    with pytest.raises(ValueError, match="call it right after step"):
        stepper.greedy()  # finish() emptied the record


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_stepper_fill_lut_that_adds_nothing_raises(name, pong_screens):
    screens, _ = pong_screens
    spec, params = actor_params((2, 3))
    lut = np.full(256, 2, dtype=np.uint8)
    calls = []
    stepper = get_backend(name).actor_stepper(params, spec.actions, lut, lambda: calls.append(1))
    with pytest.raises(ValueError, match="did not add to the lut"):
        stepper.step(screens[10], 0.5)
    assert calls == [1]


def test_stepper_rereads_the_rows_that_changed_and_after_a_failed_fill(pong_screens):
    """The compiled stepper looks up only the screen rows that changed since its last read. A changed sampled
    pixel, a new colour on an otherwise unchanged screen, changes it does not sample, and a fill_lut that
    failed once all give the numpy twin's record."""
    screens, rgbs = pong_screens
    base = screens[50]
    verdicts = np.zeros(256, dtype=np.uint8)
    verdicts[base.ravel()] = reference.is_foreground(rgbs[50][..., 0].ravel())
    new_colour = next(i for i in range(256) if i not in set(base.ravel().tolist()))
    verdicts[new_colour] = 1

    def edited(*changes):
        screen = base.copy()
        for row, col, colour in changes:
            screen[row, col] = colour
        return screen

    foreground = int(next(i for i in np.unique(base) if verdicts[i]))
    script = [base, base, edited((101, 0, foreground)), base, edited((101, 1, foreground)),  # odd column
              edited((102, 4, foreground)),  # odd row
              edited((101, 0, new_colour)), edited((101, 0, new_colour), (37, 8, foreground)), base]
    spec, params = actor_params((2, 3))
    records, fills = {}, {}
    for name in BACKEND_NAMES:
        lut = np.full(256, 2, dtype=np.uint8)
        calls, working, shown = [], [True], [None]

        def fill(lut=lut, calls=calls, working=working, shown=shown):  # as AtariGame's: the screen's colours
            calls.append(1)
            if working[0]:
                colours = np.unique(shown[0])
                lut[colours] = verdicts[colours]

        stepper = get_backend(name).actor_stepper(params, spec.actions, lut, fill)
        for t, screen in enumerate(script):
            shown[0] = screen
            if t == 6:  # the new colour: a first fill that adds nothing fails, the next call succeeds
                working[0] = False
                with pytest.raises(ValueError, match="did not add to the lut"):
                    stepper.step(screen, 0.5)
                working[0] = True
            stepper.step(screen, 0.5)
        records[name], fills[name] = stepper.finish(), len(calls)
    assert fills["cython"] == fills["numpy"] == 3  # the first screen, the failed fill, the working one
    for key in ("indices", "signs", "offsets", "choices"):
        np.testing.assert_array_equal(records["cython"][key], records["numpy"][key], err_msg=key)
    full = expanded(records["cython"])
    nnz = np.diff(full["offsets"])
    assert nnz[2] > nnz[1] and nnz[4] == nnz[5] == nnz[1] and nnz[6] > nnz[1]  # only sampled changes count


# ---------------------------------------------------------------- actor_critic_forward


def run_forward(name, params, record):
    R, A = len(record["offsets"]) - 1, params["W_pi"].shape[0]
    logits, values = np.full((R, A), np.nan), np.full(R, np.nan)
    assert get_backend(name).actor_critic_forward(params, *record_args(record), logits, values) is None
    return logits, values


def check_forward(params, record):
    x = dense(record, params)
    ref_logits, ref_values, _ = reference.actor_critic_forward(params, x)
    logit_scale, value_scale = forward_scale(params, x)
    for name in BACKEND_NAMES:
        logits, values = run_forward(name, params, record)
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-14 * logit_scale, err_msg=name)
        np.testing.assert_allclose(values, ref_values, rtol=1e-12, atol=1e-14 * value_scale, err_msg=name)
    return ref_logits, ref_values


@pytest.mark.parametrize("actions", ACTION_SETS)
def test_forward_on_a_random_sparse_record(actions, rng):
    _, params = actor_params(actions, hidden=40)
    record = random_record(rng, 600, empty_rows=(0, 1, 77, 599))
    logits, values = check_forward(params, record)
    assert np.ptp(logits) > 1.0 and np.ptp(values) > 0.1
    # an empty row sees only the biases: logits = W_pi relu(b1) + b_pi
    h0 = np.maximum(params["b1"], 0.0)
    np.testing.assert_allclose(logits[77], params["W_pi"] @ h0 + params["b_pi"], rtol=1e-13)
    assert values[0] == pytest.approx(params["w_v"] @ h0 + params["b_v"][0], rel=1e-13)


def test_forward_on_the_played_record(played):
    record = expanded(joined(played["cython"]["records"]))
    check_forward(played["params"], record)


def test_forward_hand_computed():
    params = {"W1": np.zeros((2, N_PIXELS), order="F"), "b1": np.array([0.5, -1.0]),
              "W_pi": np.array([[1.0, 2.0], [-1.0, 0.5]]), "b_pi": np.array([0.1, 0.0]),
              "w_v": np.array([2.0, -3.0]), "b_v": np.array([0.25])}
    params["W1"][:, 10] = [1.0, 2.0]
    params["W1"][:, 20] = [-2.0, 0.5]
    record = {"indices": np.array([10, 20, 10], np.int16), "signs": np.array([1, -1, -1], np.int8),
              "offsets": np.array([0, 2, 2, 3], np.int32)}
    # row 0: pre = b1 + W1[:,10] - W1[:,20] = [3.5, 0.5]; row 1: [0.5, -1 -> 0]; row 2: [-0.5 -> 0, -3 -> 0]
    hs = np.array([[3.5, 0.5], [0.5, 0.0], [0.0, 0.0]])
    for name in BACKEND_NAMES:
        logits, values = run_forward(name, params, record)
        np.testing.assert_allclose(logits, hs @ params["W_pi"].T + params["b_pi"], rtol=1e-15, err_msg=name)
        np.testing.assert_allclose(values, hs @ params["w_v"] + 0.25, rtol=1e-15, err_msg=name)
        np.testing.assert_array_equal(values, [0.25 + 7.0 - 1.5, 0.25 + 1.0, 0.25])


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_forward_on_an_empty_record(name):
    _, params = actor_params((2, 3), hidden=4)
    record = {"indices": np.zeros(0, np.int16), "signs": np.zeros(0, np.int8), "offsets": np.zeros(1, np.int32)}
    logits, values = run_forward(name, params, record)
    assert logits.shape == (0, 2) and values.shape == (0,)


# ---------------------------------------------------------------- ppo_backward

PPO_CASES = [  # (actions, clip, vf_coef, ent_coef)
    pytest.param((2, 3), 0.2, 0.5, 0.01, id="A2"),
    pytest.param((0, 2, 3), 0.1, 1.0, 0.05, id="A3"),
    pytest.param((0, 2, 3), 0.3, 0.25, 0.0, id="A3-no-entropy"),
]


def minibatch(rng, params, record, M, spread=0.4):
    """rows (with repeats and an empty row), choices, logp_old perturbed off the current policy, advantages, returns."""
    R, A = len(record["offsets"]) - 1, params["W_pi"].shape[0]
    rows = rng.integers(0, R, size=M).astype(np.int64)
    empty = np.flatnonzero(np.diff(record["offsets"]) == 0)
    rows[:2] = empty[0]
    rows[2] = rows[3]
    choices = rng.integers(0, A, size=M).astype(np.uint8)
    logits, _, _ = reference.actor_critic_forward(params, dense(record, params)[rows])
    logp = reference.log_softmax(logits)[np.arange(M), choices]
    logp_old = logp + rng.normal(0.0, spread, size=M)
    advantages = rng.standard_normal(M)
    returns = rng.standard_normal(M)
    return rows, choices, logp_old, advantages, returns


def run_backward(name, params, record, batch, coefs, fill=np.nan):
    grads = zero_grads(params, fill)
    loss, stats = get_backend(name).ppo_backward(params, *record_args(record), *batch, *coefs, grads)
    return loss, grads, stats


@pytest.mark.parametrize("actions, clip, vf_coef, ent_coef", PPO_CASES)
def test_ppo_backward_matches_reference(actions, clip, vf_coef, ent_coef, rng):
    _, params = actor_params(actions, hidden=40)
    params["W_pi"] *= 0.05  # ratios of a moderate spread around 1
    record = random_record(rng, 300, empty_rows=(5,))
    batch = rows, choices, logp_old, advantages, returns = minibatch(rng, params, record, 128)
    coefs = (clip, vf_coef, ent_coef)
    x = dense(record, params)[rows]
    ref_loss, ref_grads, ref_stats = reference.ppo_loss(params, x, choices.astype(np.intp), logp_old, advantages,
                                                        returns, *coefs)
    # Clipping is active (zero gradient) for rows on both sides: ratio > 1 + clip with A > 0, < 1 - clip with A < 0.
    logits, values, _ = reference.actor_critic_forward(params, x)
    ratio = np.exp(reference.log_softmax(logits)[np.arange(len(rows)), choices] - logp_old)
    assert np.any((ratio > 1 + clip) & (advantages > 0)) and np.any((ratio < 1 - clip) & (advantages < 0))
    assert np.any((ratio > 1 + clip) & (advantages < 0)) and np.any((ratio < 1 - clip) & (advantages > 0))
    clipped = ((ratio > 1 + clip) & (advantages > 0)) | ((ratio < 1 - clip) & (advantages < 0))
    assert ref_stats["clip_fraction"] == pytest.approx(clipped.mean(), abs=1e-15)
    assert 0.1 < ref_stats["clip_fraction"] < 0.9
    assert ref_stats["value_loss"] == pytest.approx(np.mean(0.5 * (values - returns) ** 2), rel=1e-12)
    assert ref_loss == pytest.approx(ref_stats["policy_loss"] + vf_coef * ref_stats["value_loss"]
                                     - ent_coef * ref_stats["entropy"], rel=1e-12)
    assert 0.0 < ref_stats["entropy"] < np.log(len(actions))

    for name in BACKEND_NAMES:
        for fill in (np.nan, 1e300):  # the gradients are overwritten, not added to
            loss, grads, stats = run_backward(name, params, record, batch, coefs, fill)
            assert loss == pytest.approx(ref_loss, rel=1e-10), name
            assert set(stats) == set(ref_stats)
            for key in ref_stats:
                assert stats[key] == pytest.approx(ref_stats[key], rel=1e-10, abs=1e-15), (name, key)
            for key in PARAM_NAMES:
                scale = np.max(np.abs(ref_grads[key]))
                assert scale > 0, key
                np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-10, atol=1e-12 * scale,
                                           err_msg=f"{name} {key}")
    # Pixels that no minibatch row touches get exactly zero gradient.
    untouched = ~np.any(x != 0, axis=0)
    assert untouched.sum() > 1000
    _, grads, _ = run_backward("cython", params, record, batch, coefs)
    np.testing.assert_array_equal(grads["W1"][:, untouched], 0.0)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_ppo_backward_accumulates_into_the_gradients(name, rng):
    """With accumulate the minibatch's gradient is added to what grads hold; into zeros it is the same
    bits as the overwriting call (the learner accumulates into gradients Adam cleared)."""
    _, params = actor_params((0, 2, 3), hidden=24)
    record = random_record(rng, 200, empty_rows=(3,))
    batch = minibatch(rng, params, record, 64)
    coefs = (0.2, 0.5, 0.01)
    backward = get_backend(name).ppo_backward
    loss, fresh, stats = run_backward(name, params, record, batch, coefs)
    zeros = zero_grads(params, 0.0)
    assert backward(params, *record_args(record), *batch, *coefs, zeros, accumulate=True) == (loss, stats)
    held = {key: rng.standard_normal(arr.shape) for key, arr in params.items()}
    grads = {key: np.array(held[key], order="K" if key != "W1" else "F") for key in params}
    backward(params, *record_args(record), *batch, *coefs, grads, accumulate=True)
    for key in PARAM_NAMES:
        if name == "cython":
            np.testing.assert_array_equal(zeros[key], fresh[key], err_msg=key)
        else:
            np.testing.assert_allclose(zeros[key], fresh[key], rtol=1e-15, atol=0, err_msg=key)
        np.testing.assert_allclose(grads[key], held[key] + fresh[key], rtol=1e-12, atol=1e-15, err_msg=key)
        assert np.any(fresh[key] != 0), key


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_ppo_backward_on_the_played_record(name, played, rng):
    params = {key: arr.copy(order="K") for key, arr in played["params"].items()}
    params["W_pi"] *= 0.01
    record = expanded(joined(played["cython"]["records"]))
    stepped = np.flatnonzero(record["choices"] != 255)
    rows = np.sort(rng.choice(stepped, size=200, replace=False)).astype(np.int64)
    choices = record["choices"][rows]
    x = dense(record, params)[rows]
    logits, _, _ = reference.actor_critic_forward(params, x)
    logp_old = reference.log_softmax(logits)[np.arange(200), choices] + rng.normal(0, 0.3, 200)
    batch = (rows, choices, logp_old, rng.standard_normal(200), rng.standard_normal(200))
    ref_loss, ref_grads, ref_stats = reference.ppo_loss(params, x, choices.astype(np.intp), *batch[2:], 0.2, 0.5, 0.01)
    loss, grads, stats = run_backward(name, params, record, batch, (0.2, 0.5, 0.01))
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for key in PARAM_NAMES:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-10,
                                   atol=1e-12 * np.max(np.abs(ref_grads[key])), err_msg=key)
    assert stats["clip_fraction"] == ref_stats["clip_fraction"] > 0


@pytest.mark.parametrize("name, threads", [("cython", 1), ("cython", 3), ("numpy", 1)])
def test_the_forward_keeps_hidden_layers_that_the_backward_takes_for_the_same_result(name, threads, played, rng):
    """The learner's first minibatch reads the hidden layers of its update's first forward pass (the
    weights are the same) instead of recomputing them: the forward's other outputs and the backward's
    are the same bits with or without them."""
    params = {key: arr.copy(order="K") for key, arr in played["params"].items()}
    record = expanded(joined(played["cython"]["records"]))
    backend = get_backend(name, threads=threads) if name == "cython" else get_backend(name)
    R, A, H = len(record["offsets"]) - 1, params["W_pi"].shape[0], params["b1"].shape[0]
    logits, values = run_forward(name, params, record)
    kept_logits, kept_values, hidden = np.full((R, A), np.nan), np.full(R, np.nan), np.full((R, H), np.nan)
    backend.actor_critic_forward(params, *record_args(record), kept_logits, kept_values, hidden=hidden)
    np.testing.assert_array_equal(kept_logits, logits)
    np.testing.assert_array_equal(kept_values, values)
    _, _, ref_hidden = reference.actor_critic_forward(params, dense(record, params))
    np.testing.assert_allclose(hidden, ref_hidden, rtol=1e-12, atol=1e-15)
    assert np.any(hidden > 0) and np.any(hidden == 0)

    stepped = np.flatnonzero(record["choices"] != 255)
    rows = np.sort(rng.choice(stepped, size=150, replace=False)).astype(np.int64)
    logp_old = reference.log_softmax(logits[rows])[np.arange(150), record["choices"][rows]] + rng.normal(0, 0.3, 150)
    batch = (rows, record["choices"][rows], logp_old, rng.standard_normal(150), rng.standard_normal(150))
    coefs = (0.2, 0.5, 0.01)
    recomputed, kept = zero_grads(params, 0.0), zero_grads(params, 0.0)
    assert (backend.ppo_backward(params, *record_args(record), *batch, *coefs, recomputed)
            == backend.ppo_backward(params, *record_args(record), *batch, *coefs, kept, hidden=read_only(hidden)))
    for key in PARAM_NAMES:
        np.testing.assert_array_equal(kept[key], recomputed[key], err_msg=key)
        assert np.any(kept[key] != 0), key


@pytest.mark.parametrize("kernel", ["forward", "backward"])
@pytest.mark.parametrize("make, error, message", [
    (lambda R, H: np.zeros((R, H + 1)), ValueError, "hidden has length 9 along axis 1"),
    (lambda R, H: np.zeros((R + 1, H)), ValueError, "hidden has length 6 along axis 0"),
    (lambda R, H: np.zeros((R, H), np.float32), TypeError, "hidden must have dtype float64"),
    (lambda R, H: np.zeros((H, R)).T, ValueError, "hidden must be C-contiguous"),
    (lambda R, H: np.zeros(R * H), ValueError, "hidden must be 2-D"),
])
def test_bad_hidden_layers_are_named(forward_args, backward_args, kernel, make, error, message):
    hidden = make(5, 8)
    with pytest.raises(error, match=message):
        if kernel == "forward":
            kernels.actor_critic_forward(*forward_args, hidden=hidden)
        else:
            kernels.ppo_backward(*backward_args, hidden=hidden)


def test_the_forward_writes_hidden_layers_only_into_a_writeable_array(forward_args):
    with pytest.raises(ValueError, match="hidden is read-only"):
        kernels.actor_critic_forward(*forward_args, hidden=read_only(np.zeros((5, 8))))


@pytest.mark.parametrize("name", BACKEND_NAMES + ("reference",))
def test_ppo_hand_computed_one_step(name):
    """One row at ratio 1 (logp_old = logp), advantage 1, no value or entropy term:
    d loss / d logits = probs - onehot(a); loss = -1."""
    _, params = actor_params((0, 2, 3), hidden=5)
    params["b1"][...] = [0.2, -0.2, 0.2, -0.2, 0.2]  # units 0, 2, 4 on, 1 and 3 off (|W1| ~ 1/80)
    record = {"indices": np.array([7, 4000], np.int16), "signs": np.array([1, -1], np.int8),
              "offsets": np.array([0, 2], np.int32)}
    x = dense(record)
    logits, _, h = reference.actor_critic_forward(params, x)
    assert np.any(h > 0) and np.any(h == 0)
    logp = reference.log_softmax(logits)[0]
    batch = (np.array([0], np.int64), np.array([1], np.uint8), logp[[1]], np.array([1.0]), np.zeros(1))
    if name == "reference":
        loss, grads, stats = reference.ppo_loss(params, x, np.array([1]), *batch[2:], 0.2, 0.0, 0.0)
    else:
        loss, grads, stats = run_backward(name, params, record, batch, (0.2, 0.0, 0.0))
    d_logits = np.exp(logp) - np.eye(3)[1]
    assert loss == pytest.approx(-1.0, rel=1e-14)
    assert stats["clip_fraction"] == 0.0 and stats["policy_loss"] == pytest.approx(-1.0, rel=1e-14)
    np.testing.assert_allclose(grads["b_pi"], d_logits, rtol=1e-13)
    np.testing.assert_allclose(grads["W_pi"], np.outer(d_logits, h[0]), rtol=1e-13)
    np.testing.assert_array_equal(grads["w_v"], 0.0)
    np.testing.assert_array_equal(grads["b_v"], 0.0)
    dh = (d_logits @ params["W_pi"]) * (h[0] > 0)
    np.testing.assert_allclose(grads["b1"], dh, rtol=1e-13)
    np.testing.assert_allclose(grads["W1"][:, 7], dh, rtol=1e-13)
    np.testing.assert_allclose(grads["W1"][:, 4000], -dh, rtol=1e-13)
    assert np.count_nonzero(grads["W1"][:, [c for c in range(N_PIXELS) if c not in (7, 4000)]]) == 0


# ---------------------------------------------------------------- finite differences of reference.ppo_loss


def fd_problem(rng, n_hidden=6, A=3, T=10, clip=0.2):
    """A small dense problem away from every kink: no pre-activation near 0, no ratio near 1 +- clip."""
    pixels = np.array([0, 13, 802, 3200, 5001, 6399])
    for _ in range(200):
        x = np.zeros((T, N_PIXELS))
        x[:, pixels] = rng.choice([-1.0, 0.0, 1.0], size=(T, len(pixels)))
        params = {"W1": np.asfortranarray(rng.standard_normal((n_hidden, N_PIXELS))),
                  "b1": 0.5 * rng.standard_normal(n_hidden), "W_pi": rng.standard_normal((A, n_hidden)),
                  "b_pi": rng.standard_normal(A), "w_v": rng.standard_normal(n_hidden),
                  "b_v": rng.standard_normal(1)}
        actions = rng.integers(0, A, size=T)
        logits, _, _ = reference.actor_critic_forward(params, x)
        logp = reference.log_softmax(logits)[np.arange(T), actions]
        logp_old = logp + rng.normal(0.0, 0.4, size=T)
        advantages = rng.standard_normal(T)
        pre = x @ params["W1"].T + params["b1"]
        ratio = np.exp(logp - logp_old)
        clipped = ((ratio > 1 + clip) & (advantages > 0)) | ((ratio < 1 - clip) & (advantages < 0))
        if (np.min(np.abs(pre)) > 1e-2 and np.min(np.abs(np.abs(ratio - 1) - clip)) > 1e-2
                and 2 <= clipped.sum() <= T - 3 and np.any(pre < 0) and np.any(pre > 0)):
            return params, x, actions, logp_old, advantages, rng.standard_normal(T), pixels, clipped
    pytest.fail("no problem away from the kinks was drawn")


def test_ppo_loss_gradient_by_finite_differences(rng):
    clip, vf_coef, ent_coef = 0.2, 0.5, 0.1
    params, x, actions, logp_old, advantages, returns, pixels, clipped = fd_problem(rng, clip=clip)
    args = (x, actions, logp_old, advantages, returns, clip, vf_coef, ent_coef)
    loss, grads, stats = reference.ppo_loss(params, *args)
    assert stats["clip_fraction"] == pytest.approx(clipped.mean())

    def loss_at(name, index, delta):
        bumped = dict(params)
        bumped[name] = params[name].copy(order="K")
        bumped[name][index] += delta
        return reference.ppo_loss(bumped, *args)[0]

    eps = 1e-6
    unused = [5, 4000]  # pixels no row touches
    checked = {"W1": [(j, c) for j in range(params["W1"].shape[0]) for c in list(pixels) + unused]}
    for name in PARAM_NAMES[1:]:
        checked[name] = list(np.ndindex(params[name].shape))
    for name, indices in checked.items():
        for index in indices:
            numeric = (loss_at(name, index, eps) - loss_at(name, index, -eps)) / (2 * eps)
            assert grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (name, index)
    for name in PARAM_NAMES[1:]:
        assert np.all(grads[name] != 0), name  # every entry was a real check
    assert np.count_nonzero(grads["W1"][:, pixels]) >= grads["W1"].shape[0] * len(pixels) // 2
    np.testing.assert_array_equal(grads["W1"][:, unused], 0.0)
    # and the compiled backward agrees on the same problem, fed as a sparse record
    nz = [np.flatnonzero(row) for row in x]
    record = {"indices": np.concatenate(nz).astype(np.int16),
              "signs": np.concatenate([row[i] for row, i in zip(x, nz)]).astype(np.int8),
              "offsets": np.concatenate([[0], np.cumsum([len(i) for i in nz])]).astype(np.int32)}
    batch = (np.arange(len(x), dtype=np.int64), actions.astype(np.uint8), logp_old, advantages, returns)
    compiled_loss, compiled_grads, _ = run_backward("cython", params, record, batch, (clip, vf_coef, ent_coef))
    assert compiled_loss == pytest.approx(loss, rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(compiled_grads[name], grads[name], rtol=1e-10,
                                   atol=1e-13 * np.max(np.abs(grads[name])), err_msg=name)


# ---------------------------------------------------------------- adam_update


@pytest.mark.parametrize("shape, order", [((200, 6400), "F"), ((40, 300), "C"), ((200,), "C"), ((1,), "C"),
                                          ((7, 3, 5), "F")])
def test_adam_compiled_matches_reference(shape, order, rng):
    w = np.asarray(rng.standard_normal(shape), order=order)
    m, v = np.zeros(shape, order=order), np.zeros(shape, order=order)
    w_ref, m_ref, v_ref = w.copy(order="K"), m.copy(order="K"), v.copy(order="K")
    w0 = w.copy(order="K")
    for step in range(1, 6):  # the later steps read the moments the earlier ones wrote
        g = np.asarray(rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 1, size=shape), order=order)
        g_before = g.copy(order="K")
        assert kernels.adam_update(w, g, m, v, step, 1e-3) is True
        assert reference.adam_update(w_ref, g, m_ref, v_ref, step, 1e-3) is True
        np.testing.assert_array_equal(g, g_before)
    for actual, wanted in ((m, m_ref), (v, v_ref), (w, w_ref)):
        assert actual.flags.f_contiguous == wanted.flags.f_contiguous
        # Bit for bit: the same operations in the same order, on whichever instruction set the loader chose.
        np.testing.assert_array_equal(actual, wanted)
    assert np.all(w != w0)


@pytest.mark.parametrize("name", ("compiled", "reference"))
def test_adam_first_step_moves_by_lr_times_sign(name):
    adam = kernels.adam_update if name == "compiled" else reference.adam_update
    w = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    g = np.asfortranarray([[3.0, -2.0, 1e-3, 0.0], [-1e-6, 5.0, -0.5, 2.0], [1.0, 1.0, -1.0, 7.0]])
    m, v = np.zeros_like(w), np.zeros_like(w)
    w0 = w.copy(order="F")
    adam(w, g, m, v, 1, 0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    # m = 0.1 g, v = 0.001 g^2; bias-corrected m_hat = g, v_hat = g^2: w -= lr g / (|g| + eps)
    np.testing.assert_allclose(m, 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(v, 0.001 * g * g, rtol=1e-14)
    np.testing.assert_allclose(w, w0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)
    big = np.abs(g) >= 1e-3
    np.testing.assert_allclose((w - w0)[big], -0.01 * np.sign(g[big]), rtol=1e-4)
    assert w[0, 3] == w0[0, 3]  # zero gradient: no move
    assert w.flags.f_contiguous


@pytest.mark.parametrize("threads", (1, 3))
def test_adam_can_clear_the_gradient_it_reads(threads, rng):
    """clear_gradient zeroes g and changes nothing else: compiled (any thread count) and reference agree
    bit for bit with each other and with the step that keeps g."""
    shape = (40, 3000)  # long enough for the threads to split it
    start = {key: np.asfortranarray(rng.standard_normal(shape)) for key in "wgm"}
    start["v"] = np.asfortranarray(rng.random(shape))
    kept = {key: arr.copy(order="F") for key, arr in start.items()}
    assert kernels.adam_update(*(kept[key] for key in "wgmv"), 4, 1e-3) is True
    for adam, kwargs in ((kernels.adam_update, {"threads": threads}), (reference.adam_update, {})):
        cleared = {key: arr.copy(order="F") for key, arr in start.items()}
        assert adam(*(cleared[key] for key in "wgmv"), 4, 1e-3, clear_gradient=True, **kwargs) is True
        np.testing.assert_array_equal(cleared["g"], 0.0)
        assert not np.signbit(cleared["g"]).any()  # +0.0, as the backward's own zeroing writes
        for key in "wmv":
            np.testing.assert_array_equal(cleared[key], kept[key], err_msg=f"{adam.__module__} {key}")


def test_adam_clearing_a_read_only_gradient_is_refused():
    w = np.ones((3, 4))
    g = read_only(np.full_like(w, 0.5))
    with pytest.raises(ValueError, match="g is read-only"):
        kernels.adam_update(w, g, np.zeros_like(w), np.zeros_like(w), 1, 1e-3, clear_gradient=True)
    np.testing.assert_array_equal(w, 1.0)
    assert kernels.adam_update(w, g, np.zeros_like(w), np.zeros_like(w), 1, 1e-3) is True  # reading it is fine


@pytest.mark.parametrize("name", ("compiled", "reference"))
@pytest.mark.parametrize("where", ("w", "g", "m", "v"))
@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf, 1e300))
def test_adam_reports_whether_it_left_everything_finite(name, where, bad):
    """The flag is False when a new w, m or v is NaN or infinite, whichever array brought it (a huge
    gradient overflows v = g^2); True otherwise."""
    adam = kernels.adam_update if name == "compiled" else reference.adam_update
    arrays = {key: np.asfortranarray(np.full((5, 9), 0.5)) for key in "wgmv"}
    assert adam(*(arrays[key].copy(order="F") for key in "wgmv"), 3, 1e-3) is True
    arrays[where][2, 7] = bad
    with np.errstate(over="ignore", invalid="ignore"):  # numpy's warnings; the flag is what is tested
        finite = adam(*(arrays[key] for key in "wgmv"), 3, 1e-3)
    assert finite is bool(np.isfinite(arrays["w"]).all() and np.isfinite(arrays["m"]).all()
                          and np.isfinite(arrays["v"]).all())
    assert finite is (bad == 1e300 and where != "g")  # 1e300 stays finite, but not squared as a gradient


@pytest.mark.parametrize("threads", (1, 3))
def test_lazy_adam_steps_the_listed_columns_alone(threads, rng):
    """With columns, compiled (any thread count) and reference agree bit for bit; the listed columns take
    exactly dense Adam's step of the columns alone, and every other column of w, g, m and v is untouched."""
    shape = (40, 3000)  # long enough for the threads to split it
    start = {key: np.asfortranarray(rng.standard_normal(shape)) for key in "wgm"}
    start["v"] = np.asfortranarray(rng.random(shape))
    columns = np.unique(rng.integers(0, shape[1], 700)).astype(np.int64)
    others = np.setdiff1d(np.arange(shape[1]), columns)
    alone = {key: np.asfortranarray(arr[:, columns]) for key, arr in start.items()}
    assert kernels.adam_update(*(alone[key] for key in "wgmv"), 4, 1e-3, clear_gradient=True) is True
    for adam, kwargs in ((kernels.adam_update, {"threads": threads}), (reference.adam_update, {})):
        lazy = {key: arr.copy(order="F") for key, arr in start.items()}
        assert adam(*(lazy[key] for key in "wgmv"), 4, 1e-3, clear_gradient=True, columns=columns, **kwargs)
        for key in "wgmv":
            np.testing.assert_array_equal(lazy[key][:, columns], alone[key], err_msg=f"{adam.__module__} {key}")
            np.testing.assert_array_equal(lazy[key][:, others], start[key][:, others])
            assert lazy[key].flags.f_contiguous


def test_lazy_adam_on_every_column_is_dense_adam(rng):
    shape = (8, 50)
    start = {key: np.asfortranarray(rng.standard_normal(shape)) for key in "wgmv"}
    start["v"] = np.abs(start["v"])
    dense_ = {key: arr.copy(order="F") for key, arr in start.items()}
    lazy = {key: arr.copy(order="F") for key, arr in start.items()}
    kernels.adam_update(*(dense_[key] for key in "wgmv"), 2, 1e-3)
    kernels.adam_update(*(lazy[key] for key in "wgmv"), 2, 1e-3, columns=np.arange(50))
    for key in "wgmv":
        np.testing.assert_array_equal(lazy[key], dense_[key])


def test_lazy_adam_reports_only_the_listed_columns_finiteness():
    arrays = {key: np.asfortranarray(np.full((5, 9), 0.5)) for key in "wgmv"}
    arrays["m"][2, 7] = np.inf  # in an unlisted column: never read, never written
    assert kernels.adam_update(*(arrays[key] for key in "wgmv"), 3, 1e-3, columns=np.array([0, 4])) is True
    assert kernels.adam_update(*(arrays[key] for key in "wgmv"), 3, 1e-3, columns=np.array([4, 7])) is False


@pytest.mark.parametrize("columns, error, message", [
    (np.array([3, 1]), ValueError, "strictly increasing"), (np.array([1, 1]), ValueError, "strictly increasing"),
    (np.array([0, 9]), ValueError, r"lie in \[0, 9\)"), (np.array([-1]), ValueError, "strictly increasing and lie in"),
    (np.array([0.0, 1.0]), TypeError, "columns must have dtype int64"),
    (np.array([[0, 1]]), ValueError, "columns must be 1-D")])
def test_lazy_adam_refuses_bad_columns(columns, error, message):
    arrays = {key: np.asfortranarray(np.full((5, 9), 0.5)) for key in "wgmv"}
    with pytest.raises(error, match=message):
        kernels.adam_update(*(arrays[key] for key in "wgmv"), 1, 1e-3, columns=columns)
    np.testing.assert_array_equal(arrays["w"], 0.5)


@pytest.mark.parametrize("w, message", [(np.full((5, 9), 0.5), "w must be Fortran-ordered"),
                                        (np.full(9, 0.5), "w must be 2-D")])
def test_lazy_adam_needs_fortran_matrices(w, message):
    with pytest.raises(ValueError, match=message):
        kernels.adam_update(w, w.copy(), w.copy(), w.copy(), 1, 1e-3, columns=np.array([0]))


def test_touched_columns_compiled_matches_reference(rng):
    """The distinct inputs of the listed rows, sorted: a row may repeat a pixel, rows may be empty, and the
    frame's second block of inputs (6400 and up) counts like the first."""
    record = random_record(rng, 300, empty_rows=(0, 5, 299))
    record["indices"][record["offsets"][7] + 1] = record["indices"][record["offsets"][7]]
    record["indices"][record["offsets"][9]] += 6400
    for rows in (np.arange(300), np.sort(rng.choice(300, 40, replace=False)), np.array([0, 5]), np.array([9]),
                 np.zeros(0)):
        rows = rows.astype(np.int64)
        columns = kernels.touched_columns(record["indices"], record["offsets"], rows)
        listed = [record["indices"][record["offsets"][r]:record["offsets"][r + 1]] for r in rows]
        wanted = sorted({int(i) for row in listed for i in row})
        assert columns.dtype == np.int64 and columns.tolist() == wanted
        np.testing.assert_array_equal(reference.touched_columns(record["indices"], record["offsets"], rows),
                                      columns)


def test_touched_columns_refuses_rows_outside_the_record(rng):
    record = random_record(rng, 10)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 10\)"):
        kernels.touched_columns(record["indices"], record["offsets"], np.array([3, 10]))
    with pytest.raises(ValueError, match="offsets must rise"):
        kernels.touched_columns(record["indices"], record["offsets"][:-1], np.array([3]))


# ---------------------------------------------------------------- threads


def learner_outcome(params, record, batches, threads):
    """Everything the learner's kernels compute from one record, run with this many threads: the forward's
    logits and values, then per minibatch the backward's loss, stats and gradients and two Adam steps on a
    copy of the weights (the second reads the moments the first wrote)."""
    R, A = len(record["offsets"]) - 1, params["W_pi"].shape[0]
    logits, values = np.full((R, A), np.nan), np.full(R, np.nan)
    kernels.actor_critic_forward(params, *record_args(record), logits, values, threads=threads)
    outcome = {"logits": logits, "values": values}
    for b, batch in enumerate(batches):
        grads = zero_grads(params)
        loss, stats = kernels.ppo_backward(params, *record_args(record), *batch, 0.2, 0.5, 0.01, grads,
                                           threads=threads)
        outcome[f"{b} loss and stats"] = np.array([loss, *stats.values()])
        # The learner's way: accumulate into zeros, and Adam clears the gradient as it reads it.
        accumulated = zero_grads(params, 0.0)
        kernels.ppo_backward(params, *record_args(record), *batch, 0.2, 0.5, 0.01, accumulated,
                             threads=threads, accumulate=True)
        for name, grad in accumulated.items():
            np.testing.assert_array_equal(grad, grads[name])
            w, m, v = (np.zeros_like(grad, order="K") for _ in range(3))
            assert kernels.adam_update(w, grad, m, v, 1, 1e-3, threads=threads, clear_gradient=True) is True
            np.testing.assert_array_equal(grad, 0.0)
        for name, grad in grads.items():
            w = params[name].copy(order="K")
            m, v = np.zeros_like(w, order="K"), np.zeros_like(w, order="K")
            for step in (1, 2):
                assert kernels.adam_update(w, grad, m, v, step, 1e-3, threads=threads) is True
            outcome.update({f"{b} d{name}": grad, f"{b} {name}": w, f"{b} m {name}": m, f"{b} v {name}": v})
    return outcome


@pytest.mark.parametrize("hidden", (13, 200))  # 13 units: two cache lines of them, fewer than some counts
def test_learner_kernels_give_the_same_bits_for_any_thread_count(hidden, rng):
    """The forward splits rows, the backward's sums over rows split hidden units, Adam splits weights: no
    number changes with the thread count. A row may repeat a pixel (the scatter adds to one column twice)."""
    _, params = actor_params((0, 2, 3), hidden=hidden)
    record = random_record(rng, 300, empty_rows=(0, 5, 299))
    record["indices"][record["offsets"][7] + 1] = record["indices"][record["offsets"][7]]
    batches = [minibatch(rng, params, record, M) for M in (150, 4)]
    expected = learner_outcome(params, record, batches, threads=1)
    for threads in (2, 3, 8):
        outcome = learner_outcome(params, record, batches, threads)
        assert sorted(outcome) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(outcome[key], value, err_msg=f"{key}, {threads} threads")


@pytest.mark.parametrize("where", (0, 70_000, 129_999))  # in the first, the middle, the last thread's part
def test_threaded_adam_reports_a_non_finite_value_in_any_part(where):
    """Split between threads (a long array), the finite flag is still every part's."""
    arrays = {key: np.full(130_000, 0.5) for key in "wgmv"}
    assert kernels.adam_update(*(arrays[key].copy() for key in "wgmv"), 3, 1e-3, threads=3) is True
    arrays["m"][where] = np.inf
    assert kernels.adam_update(*(arrays[key] for key in "wgmv"), 3, 1e-3, threads=3) is False


@pytest.mark.parametrize("threads", (0, -2, 257, 10**6, 1.5, True, "2"))
def test_learner_kernels_refuse_a_bad_thread_count(threads, forward_args):
    params, indices, signs, offsets, logits, values = forward_args
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 256\]"):
        kernels.actor_critic_forward(params, indices, signs, offsets, logits, values, threads=threads)
    batch = minibatch(np.random.default_rng(1), params, {"indices": indices, "signs": signs, "offsets": offsets}, 4)
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 256\]"):
        kernels.ppo_backward(params, indices, signs, offsets, *batch, 0.2, 0.5, 0.01, zero_grads(params),
                             threads=threads)
    w = np.zeros(3)
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 256\]"):
        kernels.adam_update(w, w.copy(), w.copy(), w.copy(), 1, 1e-3, threads=threads)
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 256\]"):
        get_backend("cython", threads=threads)


# ---------------------------------------------------------------- bad input


@pytest.fixture
def forward_args():
    _, params = actor_params((2, 3), hidden=8)
    record = random_record(np.random.default_rng(0), 5, empty_rows=(2,))
    return [params, *record_args(record), np.zeros((5, 2)), np.zeros(5)]


def replace_param(name, value):
    def change(args):
        args[0] = dict(args[0], **{name: value(args[0][name])})
    return change


def set_arg(position, value):
    def change(args):
        args[position] = value(args[position])
    return change


def read_only(arr):
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


BAD_RECORDS = [
    (set_arg(1, lambda a: a.astype(np.int32)), TypeError, "indices must have dtype int16"),
    (set_arg(2, lambda a: a.astype(np.int16)), TypeError, "signs must have dtype int8"),
    (set_arg(3, lambda a: a.astype(np.int64)), TypeError, "offsets must have dtype int32"),
    (set_arg(1, lambda a: list(a)), TypeError, "indices must be a numpy.ndarray"),
    (set_arg(2, lambda a: a[:-1]), ValueError, "signs has length"),
    (set_arg(3, lambda a: a[:-1]), ValueError, "offsets must rise from 0 to len"),
    (set_arg(3, lambda a: a[::-1].copy()), ValueError, "offsets must rise"),
    (set_arg(1, lambda a: np.where(np.arange(len(a)) == 3, 6400, a).astype(np.int16)), ValueError,
     r"indices must lie in \[0, 6400\)"),
    (set_arg(1, lambda a: np.where(np.arange(len(a)) == 3, -1, a).astype(np.int16)), ValueError, "indices must lie in"),
    (set_arg(1, lambda a: np.repeat(a, 2)[::2]), ValueError, "indices must be C-contiguous"),
    (replace_param("W1", np.ascontiguousarray), ValueError, "W1 must be Fortran-ordered"),
    (replace_param("W1", lambda a: np.asfortranarray(a[:, :6399])), ValueError,
     r"W1 has 6399 columns, expected 6400 \(the 80x80 difference frame\) or 12800"),
    (replace_param("W1", lambda a: np.asfortranarray(np.hstack([a, a, a]))), ValueError, "W1 has 19200 columns"),
    # a W1 that also sees the frame takes the frame block's indices, and no more
    (lambda args: (replace_param("W1", lambda a: np.asfortranarray(np.hstack([a, a])))(args),
                   set_arg(1, lambda a: np.where(np.arange(len(a)) == 3, 12800, a).astype(np.int16))(args)),
     ValueError, r"indices must lie in \[0, 12800\) \(the columns of W1\)"),
    (replace_param("W1", lambda a: np.asfortranarray(a, dtype=np.float32)), TypeError, "W1 must have dtype float64"),
    (replace_param("W_pi", lambda a: a[:, :-1].copy()), ValueError, "W_pi has length 7 along axis 1"),
    (replace_param("W_pi", lambda a: a[:1].copy()), ValueError, "at least 1 hidden unit and 2 actions"),
    (replace_param("W_pi", np.asfortranarray), ValueError, "W_pi must be C-contiguous"),
    (replace_param("b_pi", lambda a: np.zeros(3)), ValueError, "b_pi has length 3"),
    (replace_param("b1", lambda a: np.zeros(7)), ValueError, "b1 has length 7"),
    (replace_param("w_v", lambda a: a.astype(np.float32)), TypeError, "w_v must have dtype float64"),
    (replace_param("b_v", lambda a: np.zeros(2)), ValueError, "b_v has length 2"),
]


@pytest.mark.parametrize("change, error, message", BAD_RECORDS + [
    (set_arg(4, lambda a: np.zeros((5, 3))), ValueError, "logits has length 3 along axis 1"),
    (set_arg(4, lambda a: np.zeros((4, 2))), ValueError, "logits has length 4 along axis 0"),
    (set_arg(4, lambda a: np.zeros((2, 5)).T), ValueError, "logits must be C-contiguous"),
    (set_arg(4, read_only), ValueError, "logits is read-only"),
    (set_arg(5, lambda a: np.zeros(6)), ValueError, "values has length 6"),
    (set_arg(5, lambda a: np.zeros(5, np.float32)), TypeError, "values must have dtype float64"),
])
def test_forward_bad_input_names_the_argument(forward_args, change, error, message):
    change(forward_args)
    with pytest.raises(error, match=message):
        kernels.actor_critic_forward(*forward_args)


@pytest.fixture
def backward_args(forward_args):
    params, indices, signs, offsets = forward_args[:4]
    return [params, indices, signs, offsets, np.array([0, 2, 4], np.int64), np.array([0, 1, 1], np.uint8),
            np.zeros(3), np.ones(3), np.zeros(3), 0.2, 0.5, 0.01, zero_grads(params)]


def replace_grad(name, value):
    def change(args):
        args[12] = dict(args[12], **{name: value(args[12][name])})
    return change


@pytest.mark.parametrize("change, error, message", BAD_RECORDS + [
    (set_arg(4, lambda a: a.astype(np.int32)), TypeError, "rows must have dtype int64"),
    (set_arg(4, lambda a: np.array([0, 2, 5], np.int64)), ValueError, r"rows must lie in \[0, 5\)"),
    (set_arg(4, lambda a: np.array([0, -1, 4], np.int64)), ValueError, "rows must lie in"),
    (set_arg(4, lambda a: a[:0]), ValueError, "at least one row"),
    (set_arg(5, lambda a: np.array([0, 2, 1], np.uint8)), ValueError, r"choices must lie in \[0, 2\)"),
    (set_arg(5, lambda a: np.array([0, 255, 1], np.uint8)), ValueError, "choices must lie in"),
    (set_arg(5, lambda a: a.astype(np.int64)), TypeError, "choices must have dtype uint8"),
    (set_arg(5, lambda a: a[:2]), ValueError, "choices has length 2"),
    (set_arg(6, lambda a: a[:2]), ValueError, "logp_old has length 2"),
    (set_arg(7, lambda a: a.astype(np.float32)), TypeError, "advantages must have dtype float64"),
    (set_arg(8, lambda a: np.zeros(4)), ValueError, "returns has length 4"),
    (replace_grad("W_pi", lambda a: np.zeros((3, 8))), ValueError, r"grads\['W_pi'\] must be float64 \(2, 8\)"),
    (replace_grad("b_v", lambda a: np.zeros(2)), ValueError, r"grads\['b_v'\] must be float64"),
    (replace_grad("b1", lambda a: a.astype(np.float32)), ValueError, r"grads\['b1'\] must be float64"),
    (replace_grad("W1", np.ascontiguousarray), ValueError, r"grads\['W1'\] must be laid out as params\['W1'\]"),
    (replace_grad("w_v", read_only), ValueError, r"grads\['w_v'\] is read-only"),
])
def test_ppo_backward_bad_input_names_the_argument(backward_args, change, error, message):
    change(backward_args)
    with pytest.raises(error, match=message):
        kernels.ppo_backward(*backward_args)


def test_ppo_backward_missing_gradient_is_named(backward_args):
    del backward_args[12]["b_pi"]
    with pytest.raises(KeyError, match="b_pi"):
        kernels.ppo_backward(*backward_args)


@pytest.mark.parametrize("make, error, message", [
    (lambda w: (w, w.copy(order="K"), np.zeros_like(w), np.zeros_like(w), 0), ValueError, "step must be at least 1"),
    (lambda w: (w, np.zeros((4, 3)), np.zeros_like(w), np.zeros_like(w), 1), ValueError,
     r"g has shape \(4, 3\), expected the shape of w \(3, 4\)"),
    (lambda w: (w, np.zeros_like(w), np.zeros((3, 4), np.float32), np.zeros_like(w), 1), TypeError,
     "m must have dtype float64"),
    (lambda w: (w, np.zeros_like(w), np.zeros_like(w), np.zeros((3, 4), order="C"), 1), ValueError,
     "share one memory order"),
    (lambda w: (w, np.zeros_like(w), np.zeros_like(w), read_only(np.zeros_like(w)), 1), ValueError,
     "v is read-only"),
    (lambda w: (w, np.zeros((3, 8), order="F")[:, ::2], np.zeros_like(w), np.zeros_like(w), 1), ValueError,
     "g must be contiguous"),
    (lambda w: (read_only(w), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w), 1), ValueError,
     "w is read-only"),
    (lambda w: (w, list(w.ravel()), np.zeros_like(w), np.zeros_like(w), 1), TypeError, "g must be a numpy.ndarray"),
])
def test_adam_bad_input_names_the_argument(make, error, message):
    w = np.asfortranarray(np.ones((3, 4)))
    w0 = w.copy()
    with pytest.raises(error, match=message):
        kernels.adam_update(*make(w), 1e-3)
    np.testing.assert_array_equal(w, w0)  # nothing was updated


def test_stepper_bad_input_names_the_argument(pong_screens):
    screens, _ = pong_screens
    _, params = actor_params((2, 3), hidden=8)
    lut = np.zeros(256, np.uint8)
    with pytest.raises(ValueError, match=r"actions must list one game action per policy output \(2\)"):
        kernels.ActorStepper(params, (0, 2, 3), lut, lambda: None)
    with pytest.raises(ValueError, match=r"lut must have shape \(256,\)"):
        kernels.ActorStepper(params, (2, 3), np.zeros(255, np.uint8), lambda: None)
    with pytest.raises(TypeError, match="lut must have dtype uint8"):
        kernels.ActorStepper(params, (2, 3), np.zeros(256, np.int64), lambda: None)
    with pytest.raises(ValueError, match="W1 must be Fortran-ordered"):
        kernels.ActorStepper(dict(params, W1=np.ascontiguousarray(params["W1"])), (2, 3), lut, lambda: None)
    stepper = kernels.ActorStepper(params, (2, 3), lut, lambda: None)
    with pytest.raises(ValueError, match=r"screen must have shape \(210, 160\)"):
        stepper.step(np.zeros((210, 160, 3), np.uint8), 0.5)
    with pytest.raises(TypeError, match="screen must have dtype uint8"):
        stepper.step(screens[0].astype(np.int16), 0.5)
    with pytest.raises(ValueError, match="screen must be C-contiguous"):
        stepper.step(np.asfortranarray(screens[0]), 0.5)
    with pytest.raises(ValueError, match=r"screen must have shape"):
        stepper.peek(screens[0][:100])
    assert stepper.n_steps == 0 and stepper.finish()["offsets"].tolist() == [0]  # nothing was recorded
