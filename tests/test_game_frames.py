"""Frame rules other than Pong's: the steppers and preprocess read any game's playfield.

A frame rule is the first of the 160 screen rows read (``first_row``) and a
uint8 (256,) foreground table. On real random play of Breakout and Freeway,
every reader of the screen (compiled and numpy twins, RGB frames and palette
screens) must agree step by step, and a game's rule must really be used: the
same frames read with Pong's row or table give other inputs. The defaults
stay the seed's Pong rule, bit for bit.
"""
import numpy as np
import pytest

from fastpg import kernels, reference
from fastpg.backends import NumpyActorStepper, NumpyStepper, get_backend
from fastpg.constants import N_PIXELS
from fastpg.env import AtariGame

from helpers import play_steps

N_STEPS = 300
HIDDEN = 16

# env id -> (first_row, background red values, the two actions of PolicyStepper)
GAMES = {
    "ALE/Breakout-v5": (34, (0, 142), (2, 3)),  # RIGHT, LEFT
    "ALE/Freeway-v5": (24, (0, 142, 170, 214), (1, 0)),  # UP, NOOP: actions[0] > actions[1]
}


def sigmoid_weights(seed=0):
    """W1 (16, 6400) Fortran-ordered and W2, scaled so that p varies over the play."""
    rng = np.random.default_rng(seed)
    W1 = np.asfortranarray(rng.standard_normal((HIDDEN, N_PIXELS)) / np.sqrt(N_PIXELS) * 4.0)
    W2 = rng.standard_normal(HIDDEN) / np.sqrt(HIDDEN) * 4.0
    return W1, W2


def actor_params(n_actions, seed=0):
    """Actor-critic parameters with W1 Fortran-ordered and a non-uniform softmax."""
    rng = np.random.default_rng(seed)
    return {
        "W1": np.asfortranarray(rng.standard_normal((HIDDEN, N_PIXELS)) / np.sqrt(N_PIXELS) * 4.0),
        "b1": 0.1 * rng.standard_normal(HIDDEN),
        "W_pi": rng.standard_normal((n_actions, HIDDEN)),
        "b_pi": np.zeros(n_actions),
        "w_v": rng.standard_normal(HIDDEN),
        "b_v": np.zeros(1),
    }


class Replay:
    """Recorded palette screens and their RGB frames; fill_lut fills the lut from screen ``t`` by a table."""

    def __init__(self, screens, rgbs, table):
        self.screens, self.rgbs, self.table = screens, rgbs, table
        self.t = 0
        self.lut = np.full(256, 2, dtype=np.uint8)
        self.fills = 0

    def fill_lut(self):
        self.fills += 1
        self.lut[self.screens[self.t].ravel()] = self.table[self.rgbs[self.t][..., 0].ravel()]


def play(env_id, n_steps=N_STEPS, seed=0):
    """Random play of env_id in two emulators (RGB and palette screens), the same seeds and actions.

    Returns read-only copies: RGB frames, palette screens and the palette game's RGB screens.
    """
    rgb_game, palette_game = AtariGame(env_id), AtariGame(env_id, screen="palette")
    actions = np.random.default_rng(seed + 1)
    rgb_rng, palette_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    frames = [rgb_game.reset(rgb_rng).copy()]
    screens = [palette_game.reset(palette_rng).copy()]
    rgbs = [palette_game.rgb().copy()]
    for _ in range(n_steps - 1):
        action = int(actions.integers(len(rgb_game.actions)))
        frame, _, done = rgb_game.step(action)
        screen, _, palette_done = palette_game.step(action)
        assert done == palette_done
        if done:
            frame, screen = rgb_game.reset(rgb_rng), palette_game.reset(palette_rng)
        frames.append(frame.copy())
        screens.append(screen.copy())
        rgbs.append(palette_game.rgb().copy())
    for arr in frames + screens + rgbs:
        arr.setflags(write=False)
    return frames, screens, rgbs


@pytest.fixture(scope="module", params=list(GAMES), ids=lambda env_id: env_id.split("/")[1].split("-")[0])
def game(request):
    """(env_id, first_row, foreground table, actions, frames, screens, rgbs) of real random play."""
    env_id = request.param
    first_row, background, actions = GAMES[env_id]
    frames, screens, rgbs = play(env_id)
    return dict(env_id=env_id, first_row=first_row, table=reference.foreground_table(background),
                actions=actions, frames=frames, screens=screens, rgbs=rgbs)


def assert_records_equal(actual, expected):
    """The same record: the inputs (and choices) exactly; dlogp = y - p as p, and logp, up to float rounding."""
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key].dtype == expected[key].dtype, key
        if key == "logp":  # NaN at the same (peeked) rows
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, atol=1e-14, err_msg=key)
        elif key == "dlogp":
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def play_policy(stepper, frames, uniforms):
    """Actions, p and nnz of every step, and the record."""
    return (*play_steps(stepper, frames, uniforms), stepper.finish())


def play_actor(stepper, replay, uniforms):
    """Actions of every step, and the record."""
    actions = []
    for t, (screen, u) in enumerate(zip(replay.screens, uniforms)):
        replay.t = t
        actions.append(stepper.step(screen, u))
    return actions, stepper.finish()


# ---------------------------------------------------------------- real play of other games


def test_the_two_emulators_show_the_same_game(game):
    """The palette game's RGB screens are the RGB game's frames: the palette checks below read the same play."""
    for t, (frame, rgb) in enumerate(zip(game["frames"], game["rgbs"])):
        np.testing.assert_array_equal(frame, rgb, err_msg=f"step {t}")


def test_preprocess_compiled_equals_reference_on_every_step(game):
    first_row, table = game["first_row"], game["table"]
    foreground = []
    for t, frame in enumerate(game["frames"]):
        expected = reference.preprocess(frame, first_row=first_row, foreground=table)
        np.testing.assert_array_equal(kernels.preprocess(frame, first_row=first_row, foreground=table), expected,
                                      err_msg=f"step {t}")
        foreground.append(int(expected.sum()))
    # The frames show a game: some pixels are foreground, most are not, and they change.
    assert 0 < min(foreground) and max(foreground) < N_PIXELS // 4 and len(set(foreground)) > 5


def test_preprocess_by_the_seed_formula(game):
    """The reference itself, against the rule written out: rows first_row + 2k, columns 2k, red not background."""
    first_row, table = game["first_row"], game["table"]
    background = np.flatnonzero(table == 0)
    for frame in game["frames"][::25]:
        red = frame[first_row:first_row + 160:2, ::2, 0]
        expected = (~np.isin(red, background)).astype(np.float64).ravel()
        np.testing.assert_array_equal(reference.preprocess(frame, first_row, table), expected)


def test_policy_stepper_compiled_equals_numpy_on_every_step(game):
    W1, W2 = sigmoid_weights()
    rule = dict(actions=game["actions"], foreground=game["table"], first_row=game["first_row"])
    compiled, twin = kernels.PolicyStepper(W1, W2, **rule), NumpyStepper(W1, W2, **rule)
    uniforms = np.random.default_rng(11).random(len(game["frames"]))
    for t, (frame, u) in enumerate(zip(game["frames"], uniforms)):
        action = compiled.step(frame, u)
        assert action == twin.step(frame, u), f"step {t}"
        assert action in game["actions"]
        assert compiled.p == pytest.approx(twin.p, rel=1e-12), f"step {t}"
        assert compiled.nnz == twin.nnz, f"step {t}"
    record = compiled.finish()
    assert_records_equal(record, twin.finish())
    assert set(np.diff(record["offsets"])) != {0}  # things moved: the inputs were not all zero
    assert compiled.actions == twin.actions == game["actions"] and compiled.first_row == twin.first_row


def test_policy_stepper_plays_its_actions(game):
    """actions[0] when u < p, else actions[1]; dlogp = y - p with y = 1 for actions[0]."""
    W1, W2 = sigmoid_weights()
    uniforms = np.random.default_rng(12).random(len(game["frames"]))
    for make in (kernels.PolicyStepper, NumpyStepper):
        stepper = make(W1, W2, game["actions"], game["table"], game["first_row"])
        actions, probs, _, record = play_policy(stepper, game["frames"], uniforms)
        below = uniforms < probs
        assert 0 < below.sum() < len(below)  # both actions are played
        np.testing.assert_array_equal(actions, np.where(below, *game["actions"]))
        np.testing.assert_allclose(record["dlogp"], below - probs, rtol=0, atol=0)


def test_a_games_rule_is_used_not_pongs(game):
    """The same frames read from Pong's first row, or by Pong's table, give other inputs."""
    first_row, table = game["first_row"], game["table"]
    frames = game["frames"]
    for module in (kernels, reference):
        own = np.array([module.preprocess(f, first_row=first_row, foreground=table) for f in frames])
        pong_row = np.array([module.preprocess(f, first_row=35, foreground=table) for f in frames])
        pong_table = np.array([module.preprocess(f, first_row=first_row) for f in frames])
        assert not np.array_equal(own, pong_row) and not np.array_equal(own, pong_table)
    W1, W2 = sigmoid_weights()
    uniforms = np.random.default_rng(13).random(len(frames))
    for make in (kernels.PolicyStepper, NumpyStepper):
        own = play_policy(make(W1, W2, foreground=table, first_row=first_row), frames, uniforms)[3]
        pong_row = play_policy(make(W1, W2, foreground=table, first_row=35), frames, uniforms)[3]
        assert not np.array_equal(own["indices"], pong_row["indices"])
        # The game's background colours do not move, so Pong's table would difference them away; the
        # table's use shows with tables whose verdicts differ on what moves: inverted, or all background.
        inverted = play_policy(make(W1, W2, foreground=1 - table, first_row=first_row), frames, uniforms)[3]
        np.testing.assert_array_equal(inverted["indices"], own["indices"])
        np.testing.assert_array_equal(inverted["signs"], -own["signs"])
        blank = play_policy(make(W1, W2, foreground=np.zeros(256, np.uint8), first_row=first_row), frames,
                            uniforms)[3]
        assert len(own["indices"]) > 0 and len(blank["indices"]) == 0


def test_actor_stepper_compiled_equals_numpy_on_every_step(game):
    first_row, table, screens, rgbs = game["first_row"], game["table"], game["screens"], game["rgbs"]
    n_actions = 3
    params = actor_params(n_actions)
    actions = (2, 0, 1)
    replays = [Replay(screens, rgbs, table) for _ in range(2)]
    steppers = [make(params, actions, replay.lut, replay.fill_lut, first_row=first_row)
                for make, replay in zip((kernels.ActorStepper, NumpyActorStepper), replays)]
    uniforms = np.random.default_rng(14).random(len(screens))
    for t, (screen, u) in enumerate(zip(screens, uniforms)):
        for replay in replays:
            replay.t = t
        compiled, twin = (stepper.step(screen, u) for stepper in steppers)
        assert compiled == twin, f"step {t}"
        np.testing.assert_allclose(steppers[0].probs, steppers[1].probs, rtol=1e-12, err_msg=f"step {t}")
        # The palette read by the game's rule is its RGB frame read by the same rule.
        np.testing.assert_array_equal(
            reference.preprocess_palette(screen, replays[0].lut, first_row),
            reference.preprocess(rgbs[t], first_row, table), err_msg=f"step {t}")
    record = steppers[0].finish()
    assert_records_equal(record, steppers[1].finish())
    assert set(np.diff(record["offsets"])) != {0} and len(set(record["choices"])) == n_actions
    assert replays[0].fills == replays[1].fills >= 1
    assert steppers[0].first_row == steppers[1].first_row == first_row


def test_actor_stepper_reads_from_first_row(game):
    """Read from row 35 instead, the same screens give another record, in both twins alike."""
    table, screens, rgbs = game["table"], game["screens"], game["rgbs"]
    params = actor_params(2)
    uniforms = np.random.default_rng(15).random(len(screens))
    records = {}
    for first_row in (game["first_row"], 35):
        for make in (kernels.ActorStepper, NumpyActorStepper):
            replay = Replay(screens, rgbs, table)
            records[first_row, make] = play_actor(make(params, (0, 1), replay.lut, replay.fill_lut, first_row),
                                                  replay, uniforms)[1]
        assert_records_equal(records[first_row, kernels.ActorStepper], records[first_row, NumpyActorStepper])
    assert not np.array_equal(records[game["first_row"], kernels.ActorStepper]["indices"],
                              records[35, kernels.ActorStepper]["indices"])


@pytest.mark.parametrize("first_row", [0, 1, 50])
def test_first_row_at_the_screen_edges(game, first_row):
    """The extreme crops (the last one reads screen row 208) agree between all readers."""
    W1, W2 = sigmoid_weights()
    frames, table = game["frames"][:60], game["table"]
    for frame in frames:
        np.testing.assert_array_equal(kernels.preprocess(frame, first_row, table),
                                      reference.preprocess(frame, first_row, table))
    uniforms = np.random.default_rng(16).random(len(frames))
    compiled = play_policy(kernels.PolicyStepper(W1, W2, (0, 1), table, first_row), frames, uniforms)
    twin = play_policy(NumpyStepper(W1, W2, (0, 1), table, first_row), frames, uniforms)
    np.testing.assert_array_equal(compiled[0], twin[0])
    assert_records_equal(compiled[3], twin[3])
    params = actor_params(2)
    replays = [Replay(game["screens"][:60], game["rgbs"][:60], table) for _ in range(2)]
    compiled, twin = (play_actor(make(params, (0, 1), r.lut, r.fill_lut, first_row), r, uniforms)
                      for make, r in zip((kernels.ActorStepper, NumpyActorStepper), replays))
    np.testing.assert_array_equal(compiled[0], twin[0])
    assert_records_equal(compiled[1], twin[1])


# ---------------------------------------------------------------- the rule's exact positions


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_hand_built_frame_under_a_games_rule(backend):
    """Freeway's rule on a frame built pixel by pixel: every reader keeps exactly rows 24, 26, ..., 182."""
    B = get_backend(backend)
    first_row, table = 24, reference.foreground_table((0, 142, 170, 214))
    frame = np.zeros((210, 160, 3), dtype=np.uint8)
    frame[24, 0, 0] = 142  # background -> 0
    frame[24, 2, 0] = 144  # Pong's background, here foreground -> pixel (0, 1)
    frame[26, 4, 0] = 214  # background -> 0
    frame[26, 6, 0] = 1  # -> pixel (1, 3)
    frame[182, 158, 0] = 200  # last kept row and column -> pixel (79, 79)
    frame[23, 8, 0] = 255  # above the playfield: dropped
    frame[184, 8, 0] = 255  # below the playfield: dropped
    frame[25, 10, 0] = 255  # odd row: dropped
    frame[24, 11, 0] = 255  # odd column: dropped
    frame[24, 12, 1:] = 255  # green and blue: ignored
    frame[35, 14, 1] = 255  # green where a red-indexed table would not look
    expected = np.zeros(N_PIXELS)
    expected[[0 * 80 + 1, 1 * 80 + 3, 79 * 80 + 79]] = 1.0

    np.testing.assert_array_equal(B.preprocess(frame, first_row=first_row, foreground=table), expected)
    # The stepper's first frame is blank, so its second step's input is the frame itself.
    W1, W2 = sigmoid_weights()
    stepper = B.stepper(W1, W2, foreground=table, first_row=first_row)
    stepper.step(np.zeros_like(frame), 0.5)
    stepper.step(frame, 0.5)
    record = stepper.finish()
    assert record["indices"].tolist() == [1, 83, 6399] and record["signs"].tolist() == [1, 1, 1]
    # The same screen in palette indices, the lut made from the table by red value.
    reds = np.unique(frame[..., 0])
    screen = np.searchsorted(reds, frame[..., 0]).astype(np.uint8)  # palette index i shows red reds[i]
    lut = np.zeros(256, np.uint8)
    lut[:len(reds)] = table[reds]
    np.testing.assert_array_equal(reference.preprocess_palette(screen, lut, first_row), expected)
    actor = B.actor_stepper(actor_params(2), (0, 1), lut, lambda: None, first_row=first_row)
    actor.step(np.zeros_like(screen), 0.5)
    actor.step(screen, 0.5)
    assert actor.finish()["indices"].tolist() == [1, 83, 6399]


# ---------------------------------------------------------------- defaults: the seed's Pong rule


def test_pong_table_is_the_seeds_rule():
    red = np.arange(256)
    seed = (red != 0) & (red != 144) & (red != 109)
    np.testing.assert_array_equal(reference.PONG_FOREGROUND, seed.astype(np.uint8))
    np.testing.assert_array_equal(reference.foreground_table((0, 144, 109)), reference.PONG_FOREGROUND)
    np.testing.assert_array_equal(reference.is_foreground(red), seed)
    table = reference.foreground_table([])
    assert table.dtype == np.uint8 and table.shape == (256,) and table.all()


def test_defaults_are_pongs_rule_bit_for_bit(pong_frames):
    explicit = dict(foreground=reference.foreground_table((0, 144, 109)), first_row=35)
    for frame in pong_frames[::10]:
        seed = ((frame[35:195:2, ::2, 0] != 0) & (frame[35:195:2, ::2, 0] != 144)
                & (frame[35:195:2, ::2, 0] != 109)).astype(np.float64).ravel()
        for module in (kernels, reference):
            np.testing.assert_array_equal(module.preprocess(frame), seed)
            np.testing.assert_array_equal(module.preprocess(frame, **explicit), seed)
    W1, W2 = sigmoid_weights()
    uniforms = np.random.default_rng(17).random(len(pong_frames))
    for make in (kernels.PolicyStepper, NumpyStepper):
        default = play_policy(make(W1, W2), pong_frames, uniforms)
        given = play_policy(make(W1, W2, (2, 3), **explicit), pong_frames, uniforms)
        np.testing.assert_array_equal(default[0], given[0])
        assert set(default[0].tolist()) == {2, 3}
        np.testing.assert_array_equal(default[1], given[1])  # exactly
        assert_records_equal(default[3], given[3])


def test_actor_stepper_default_first_row_is_pongs():
    screens = [np.random.default_rng(t).integers(0, 4, (210, 160), dtype=np.uint8) for t in range(5)]
    lut = np.array([0, 1, 1, 0] + [0] * 252, np.uint8)
    params = actor_params(2)
    for make in (kernels.ActorStepper, NumpyActorStepper):
        records = []
        for extra in ({}, {"first_row": 35}):
            stepper = make(params, (2, 3), lut, lambda: None, **extra)
            assert stepper.first_row == 35
            for screen in screens:
                stepper.step(screen, 0.5)
            records.append(stepper.finish())
        assert_records_equal(*records)
        expected = lut[screens[1][35:195:2, ::2]].astype(int) - lut[screens[0][35:195:2, ::2]]
        row1 = records[0]["indices"][records[0]["offsets"][1]:records[0]["offsets"][2]]
        np.testing.assert_array_equal(row1, np.flatnonzero(expected))
    np.testing.assert_array_equal(reference.preprocess_palette(screens[0], lut),
                                  reference.preprocess_palette(screens[0], lut, first_row=35))


# ---------------------------------------------------------------- bad input names the argument

W1_SMALL, W2_SMALL = np.zeros((2, N_PIXELS), order="F"), np.zeros(2)
FRAME = np.zeros((210, 160, 3), np.uint8)
SCREEN = np.zeros((210, 160), np.uint8)

BAD_FOREGROUND = [
    pytest.param(np.ones(255, np.uint8), id="short"),
    pytest.param(np.ones((16, 16), np.uint8), id="2-D"),
    pytest.param(np.ones(256, np.int64), id="int64"),
    pytest.param(np.ones(256, bool), id="bool"),
    pytest.param([1] * 256, id="list"),
    pytest.param(np.full(256, 2, np.uint8), id="value-2"),
    pytest.param(np.r_[np.ones(255, np.uint8), np.uint8(255)], id="value-255"),
]
BAD_FIRST_ROW = [
    pytest.param(-1, id="negative"),
    pytest.param(51, id="past-the-screen"),
    pytest.param(210, id="screen-height"),
    pytest.param(35.0, id="float"),
    pytest.param("35", id="str"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="None"),
]
BAD_ACTIONS = [
    pytest.param((2,), id="one"),
    pytest.param((2, 3, 4), id="three"),
    pytest.param((2, 2), id="same"),
    pytest.param((-1, 3), id="negative"),
    pytest.param((2.0, 3), id="float"),
    pytest.param((True, False), id="bool"),
    pytest.param(2, id="int"),
    pytest.param(None, id="None"),
]


def raises_naming(name, call):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name} ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("foreground", BAD_FOREGROUND)
def test_bad_foreground(foreground):
    for call in (lambda: kernels.PolicyStepper(W1_SMALL, W2_SMALL, foreground=foreground),
                 lambda: NumpyStepper(W1_SMALL, W2_SMALL, foreground=foreground),
                 lambda: kernels.preprocess(FRAME, foreground=foreground),
                 lambda: reference.preprocess(FRAME, foreground=foreground)):
        message = raises_naming("foreground", call)
        assert ("0" in message and "1" in message) or "(256,)" in message


@pytest.mark.parametrize("first_row", BAD_FIRST_ROW)
def test_bad_first_row(first_row):
    params, lut = actor_params(2), np.zeros(256, np.uint8)
    for call in (lambda: kernels.PolicyStepper(W1_SMALL, W2_SMALL, first_row=first_row),
                 lambda: NumpyStepper(W1_SMALL, W2_SMALL, first_row=first_row),
                 lambda: kernels.ActorStepper(params, (0, 1), lut, lambda: None, first_row=first_row),
                 lambda: NumpyActorStepper(params, (0, 1), lut, lambda: None, first_row=first_row),
                 lambda: kernels.preprocess(FRAME, first_row=first_row),
                 lambda: reference.preprocess(FRAME, first_row=first_row),
                 lambda: reference.preprocess_palette(SCREEN, lut, first_row=first_row)):
        assert "[0, 50]" in raises_naming("first_row", call)


@pytest.mark.parametrize("actions", BAD_ACTIONS)
def test_bad_actions(actions):
    for make in (kernels.PolicyStepper, NumpyStepper):
        assert "distinct" in raises_naming("actions", lambda: make(W1_SMALL, W2_SMALL, actions=actions))


def test_actions_may_be_numpy_ints():
    for make in (kernels.PolicyStepper, NumpyStepper):
        stepper = make(W1_SMALL, W2_SMALL, actions=np.array([4, 0]))
        assert stepper.step(FRAME, 0.0) == 4 and stepper.step(FRAME, 1.0) == 0
        assert stepper.actions == (4, 0) and all(type(a) is int for a in stepper.actions)


@pytest.mark.parametrize("reds", [(256,), (-1,), ("a",), (1.5,), 5, None])
def test_bad_background_reds(reds):
    raises_naming("background_reds", lambda: reference.foreground_table(reds))


def test_a_read_only_or_strided_table_is_accepted_and_copied():
    table = reference.foreground_table((0, 142))
    strided = np.repeat(table, 2)[::2]
    W1, W2 = sigmoid_weights()
    frame = np.zeros((210, 160, 3), np.uint8)
    frame[34, 0, 0] = 142
    frame[36, 2, 0] = 7
    for source in (reference.PONG_FOREGROUND, strided):
        for make in (kernels.PolicyStepper, NumpyStepper):
            assert make(W1, W2, foreground=source).step(frame, 0.5) in (2, 3)
        np.testing.assert_array_equal(kernels.preprocess(frame, 34, source), reference.preprocess(frame, 34, source))
    for make in (kernels.PolicyStepper, NumpyStepper):
        mutable = table.copy()
        stepper = make(W1, W2, foreground=mutable, first_row=np.int64(34))
        mutable[:] = 1  # the stepper copied the rule when it was made
        stepper.step(np.zeros_like(frame), 0.5)
        stepper.step(frame, 0.5)
        assert stepper.finish()["indices"].tolist() == [81] and stepper.first_row == 34
