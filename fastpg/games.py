"""What fastpg knows about each Atari game: the part of its screen the network sees, its actions,
and the rules that start its rounds.

The network's input is always 80 x 80: 160 screen rows from a game's
``first_row``, every second row and column. A pixel is foreground unless its
red value is one of the game's background values: the seed's rule for Pong,
with each game's own crop and colours. The games in :data:`KNOWN_GAMES`
declare theirs, read off their screens (README, "Any Atari game"). For any
other game the generic rule takes the most common red value of the first
frames of random play as the background; a game whose difference frames that rule leaves
dense is refused, since the sparse network would be silently wrong on it.
"""
import dataclasses
import functools

import numpy as np

from . import _validate, reference
from .constants import FRAME_SHAPE, MAX_FIRST_ROW, N_PIXELS, PONG_BACKGROUND_REDS, PONG_FIRST_ROW
from .env import AtariGame, EnvError, atari_settings

CROP_ROWS = 160  # screen rows the 80 x 80 input covers (every second one)


@dataclasses.dataclass(frozen=True)
class FrameRule:
    """Screen rows first_row..first_row+159 (every second row and column); background: red values."""

    first_row: int
    background: tuple

    def __post_init__(self):
        _validate.first_row(self.first_row)  # the kernels' own check

    def is_foreground(self, red):
        """Booleans, one per red value of ``red`` (a uint8 array)."""
        return ~np.isin(red, self.background)

    def table(self):
        """uint8 (256,): 1 for each red value that is foreground."""
        return reference.foreground_table(self.background)

    def describe(self):
        reds = ", ".join(str(red) for red in self.background)
        return f"screen rows {self.first_row}-{self.first_row + CROP_ROWS - 1}, background red {reds}"


@dataclasses.dataclass(frozen=True)
class GameProfile:
    """How fastpg plays one game.

    default_actions: the policy's actions by name (None: the game's whole
    minimal action set). pair: the two actions of REINFORCE's sigmoid head
    (None: ``--actions`` must name them). fire_to_start: the game waits for
    FIRE to serve, so FIRE is pressed after a reset and after each lost life.
    rallies: every reward ends a rally, and REINFORCE's returns restart there
    (the seed's rule for Pong; other games discount over the whole episode).
    """

    title: str
    frame: FrameRule
    default_actions: tuple = None
    pair: tuple = None
    fire_to_start: bool = False
    rallies: bool = False
    generic: bool = False

    def describe(self):
        rule = ("the generic rule (background: the commonest colour of random play)" if self.generic
                else f"{self.title}'s rule")
        text = f"{rule}: {self.frame.describe()}"
        return text + ("; FIRE is pressed to serve after a reset and each lost life" if self.fire_to_start else "")


# Read off each game's screens: the rows that hold the playfield (scores and
# timers left out), and the colours that never move. See the README's table.
KNOWN_GAMES = {
    # NOOP lets the paddle stay put: the actor-critic's evals on seeds 0-2 rose from +16.6, +17.7 and +15.9 to
    # +18.4, +18.8 and +17.85 with it (README, 0.18).
    "pong": GameProfile("Pong", FrameRule(PONG_FIRST_ROW, PONG_BACKGROUND_REDS),
                        default_actions=("NOOP", "RIGHT", "LEFT"), pair=("RIGHT", "LEFT"), rallies=True),
    "breakout": GameProfile("Breakout", FrameRule(34, (0, 142)), pair=("RIGHT", "LEFT"), fire_to_start=True),
    "freeway": GameProfile("Freeway", FrameRule(24, (0, 142, 170, 214)), pair=("UP", "NOOP")),
    "boxing": GameProfile("Boxing", FrameRule(28, (110,))),
    "space_invaders": GameProfile("SpaceInvaders", FrameRule(38, (0,)), pair=("RIGHTFIRE", "LEFTFIRE")),
}

GENERIC_FIRST_ROW = MAX_FIRST_ROW // 2  # the middle 160 rows
GENERIC_MIN_BACKGROUND = 0.5  # of the cropped first screen
GENERIC_MAX_NONZERO = 0.05  # mean fraction of non-zero pixels per difference frame, over random play
GENERIC_PROBE_STEPS = 300


def known_profile(env_id):
    """The declared profile of env_id's game, or None."""
    return KNOWN_GAMES.get(atari_settings(env_id)["game"])


@functools.lru_cache(maxsize=None)
def game_profile(env_id):
    """env_id's GameProfile: declared, or measured by the generic rule; raises EnvError for a game neither fits."""
    profile = known_profile(env_id)
    return profile if profile is not None else _generic_profile(env_id)


def _generic_profile(env_id):
    """The generic rule: the background is the most common red value over the first frames of random play."""
    reds, ends = _probe_reds(env_id)
    counts = np.bincount(reds.ravel(), minlength=256)
    background = int(counts.argmax())
    share = counts[background] / reds.size
    supported = ", ".join(profile.title for profile in KNOWN_GAMES.values())
    if share < GENERIC_MIN_BACKGROUND:
        raise EnvError(f"{env_id}: fastpg has no rule for this game, and the generic rule does not fit: its most "
                       f"common colour (red {background}) covers {share:.0%} of the screen, under "
                       f"{GENERIC_MIN_BACKGROUND:.0%}. Supported games: {supported}")
    foreground = reds != background
    changed = (foreground[1:] != foreground[:-1]).sum(axis=(1, 2))[~ends[:-1]]  # not across episode ends
    nonzero = float(changed.mean())
    if nonzero > GENERIC_MAX_NONZERO * N_PIXELS:
        raise EnvError(f"{env_id}: fastpg has no rule for this game, and the generic rule (background red "
                       f"{background}) leaves {nonzero:.0f} of {N_PIXELS} pixels non-zero per difference frame "
                       f"in random play, over {GENERIC_MAX_NONZERO:.0%}: the sparse network needs sparse frames. "
                       f"Supported games: {supported}")
    title = env_id.split("/")[-1].split("-")[0]
    return GameProfile(title, FrameRule(GENERIC_FIRST_ROW, (background,)), generic=True)


def _probe_reds(env_id):
    """uint8 (GENERIC_PROBE_STEPS, 80, 80): the cropped red channel of random play's frames (seeded, so the
    same in every process); and bool (GENERIC_PROBE_STEPS,): true where a frame is an episode's last."""
    game = AtariGame(env_id)
    rng = np.random.default_rng(0)
    rows = slice(GENERIC_FIRST_ROW, GENERIC_FIRST_ROW + CROP_ROWS, 2)
    reds = np.empty((GENERIC_PROBE_STEPS, CROP_ROWS // 2, FRAME_SHAPE[1] // 2), dtype=np.uint8)
    ends = np.zeros(GENERIC_PROBE_STEPS, dtype=bool)
    frame = game.reset(rng)
    for t in range(GENERIC_PROBE_STEPS):
        reds[t] = frame[rows, ::2, 0]
        frame, _, done = game.step(int(rng.integers(len(game.actions))))
        if done:
            ends[t] = True
            frame = game.reset(rng)
    return reds, ends


@functools.lru_cache(maxsize=None)
def action_names(env_id):
    """The names of env_id's minimal action set, in ALE's order (the policy's action indices)."""
    return tuple(action.name for action in AtariGame(env_id).actions)


def resolve_actions(env_id, names, algo):
    """Indices into env_id's minimal action set of the actions a policy plays; raises ValueError.

    names: a comma-separated string (``--actions``), or None for the game's
    default: its declared pair for REINFORCE's two-action head, else its
    default actions, else its whole minimal action set.
    """
    available = action_names(env_id)
    return tuple(available.index(name) for name in chosen_actions(env_id, names, algo))


def parse_action_names(text):
    """Action names as typed on the command line (``"noop, Left"``): split at commas, stripped, upper case."""
    return tuple(name.strip().upper() for name in str(text).split(","))


def chosen_actions(env_id, names, algo):
    """The names, in upper case, of the actions a policy plays (as :func:`resolve_actions`); raises ValueError."""
    available = action_names(env_id)
    profile = game_profile(env_id)
    if names is None:
        chosen = profile.pair if algo == "reinforce" else profile.default_actions
        if chosen is None and algo == "reinforce":
            raise ValueError(f"--algo reinforce plays two actions, and {env_id} declares none: name them with "
                             f"--actions A,B (its actions: {', '.join(available)})")
        chosen = available if chosen is None else chosen
    else:
        chosen = parse_action_names(names)
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise ValueError(f"--actions: {', '.join(unknown)} not among {env_id}'s actions "
                             f"({', '.join(available)})")
        if len(set(chosen)) != len(chosen) or len(chosen) < 2:
            raise ValueError(f"--actions must name at least 2 distinct actions, got {names!r}")
        if algo == "reinforce" and len(chosen) != 2:
            raise ValueError(f"--algo reinforce plays exactly two actions, got {len(chosen)} in --actions")
    return tuple(chosen)
