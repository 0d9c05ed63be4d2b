"""Atari games through ale-py, stepped directly and seeded per episode.

A gymnasium id (``ALE/Pong-v5``, ``Pong-v0``, ...) selects the game and its
settings: frameskip, sticky-action probability, episode frame limit. The
emulator itself runs with sticky actions off; this module applies them, one
uniform draw per emulator frame as ALE does, from a generator the caller
seeds. So an episode is a pure function of its seed and its actions, and
starting one costs a 3 ms ``reset_game`` instead of the ~70 ms ROM reload
that re-seeding ALE's own generator needs.
"""
import numpy as np

from .constants import FRAME_SHAPE


class EnvError(ValueError):
    """An environment id that fastpg cannot play."""


def atari_settings(env_id):
    """The gymnasium registration kwargs of an ALE id (game, frameskip, sticky actions...); raises EnvError."""
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error as exc:
        raise EnvError(f"unknown environment id {env_id!r}: {exc}") from None
    if not str(spec.entry_point).startswith("ale_py"):
        raise EnvError(f"{env_id!r} is not an Atari (ale-py) environment")
    kwargs = dict(spec.kwargs)
    if kwargs.get("obs_type", "rgb") != "rgb":
        raise EnvError(f"{env_id!r} does not observe RGB frames; use an id with obs_type='rgb'")
    return kwargs


SCREENS = ("rgb", "palette")
COLOUR_TABLE = 256  # bytes that save() appends to the emulator's state


class AtariGame:
    """One emulator. ``reset(rng)`` starts an episode; ``step(action)`` plays one agent step.

    Observations are written into one buffer that each call overwrites (copy
    it to keep it): uint8 (210, 160, 3) RGB frames, or with
    ``screen="palette"`` uint8 (210, 160) palette indices, a 1 us read
    instead of 31 us; ``rgb()`` then reads the RGB screen when it is needed.
    """

    def __init__(self, env_id="ALE/Pong-v5", screen="rgb"):
        from ale_py import Action, ALEInterface, LoggerMode, roms

        kwargs = atari_settings(env_id)
        self.env_id = env_id
        frameskip = kwargs.get("frameskip", 4)
        if isinstance(frameskip, int):
            self._frameskip_range = (frameskip, frameskip + 1)
        else:
            self._frameskip_range = tuple(frameskip)  # uniform in [low, high)
        self.sticky_probability = float(kwargs.get("repeat_action_probability", 0.25))

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)  # applied here instead
        max_frames = kwargs.get("max_num_frames_per_episode")
        if max_frames:
            self.ale.setInt("max_num_frames_per_episode", int(max_frames))
        for key in ("mode", "difficulty"):
            if kwargs.get(key) is not None:
                raise EnvError(f"{env_id!r} sets a game {key}, which fastpg does not support")
        self.ale.loadROM(roms.get_rom_path(kwargs["game"]))
        # Each episode starts from this state, so that what save() returns depends only on the episode's
        # seed and actions, not on the episodes this emulator played before (its frame and cycle counters).
        self._power_on = self.ale.cloneState()
        self.actions = self.ale.getMinimalActionSet()
        self._noop = self.actions[0]
        from .games import KNOWN_GAMES

        profile = KNOWN_GAMES.get(kwargs["game"])
        self.fire_to_start = profile is not None and profile.fire_to_start
        self._fire = Action.FIRE
        if screen not in SCREENS:
            raise ValueError(f"screen must be one of {SCREENS}, got {screen!r}")
        self._read_screen = self.ale.getScreenRGB if screen == "rgb" else self.ale.getScreen
        self.frame = np.empty(FRAME_SHAPE if screen == "rgb" else FRAME_SHAPE[:2], dtype=np.uint8)
        self._rgb = np.empty(FRAME_SHAPE, dtype=np.uint8)
        self._rng = None
        self._previous = self._noop
        self._restored_reds = None  # after restore(), until the next step or reset: see save()
        self.lost_life = False  # whether the last step lost a life (the game going on)

    def reset(self, rng):
        """Start an episode whose randomness (sticky actions, frameskip) comes from rng."""
        self._rng = rng
        self._previous = self._noop
        self._restored_reds = None
        self.ale.restoreState(self._power_on)
        self.ale.reset_game()
        if self.fire_to_start:
            self._act(self._fire)
        self._read_screen(self.frame)
        return self.frame

    def rgb(self):
        """The current screen as uint8 (210, 160, 3) RGB (a buffer the next call overwrites)."""
        self.ale.getScreenRGB(self._rgb)
        return self._rgb

    def fill_lut(self, lut, is_foreground):
        """Set lut[i] = is_foreground(red) for every palette index i on the current screen.

        ``is_foreground`` maps a uint8 array of red values to booleans. Reads
        both screens, so a palette index gets exactly its colour's verdict.
        """
        if self._restored_reds is not None:  # the screen restore() returned, which the emulator has not drawn
            indices = np.unique(self.frame)
            lut[indices] = is_foreground(self._restored_reds[indices])
            return
        indices = np.empty(FRAME_SHAPE[:2], dtype=np.uint8)
        self.ale.getScreen(indices)
        red = self.rgb()[..., 0]
        lut[indices.ravel()] = is_foreground(red.ravel())

    def save(self):
        """The game's state between agent steps: (emulator bytes, screen copy, sticky action).

        The emulator's own state does not hold its screen, so the bytes end
        with :data:`COLOUR_TABLE` more: the red value of each palette index on
        the screen, which ``fill_lut`` reads after a ``restore`` (in a fresh
        process, the emulator may never have shown those colours).
        """
        return (self.ale.cloneState().serialize() + self._screen_reds().tobytes(), self.frame.copy(),
                int(self._previous.value))

    def restore(self, saved, rng):
        """Continue from ``save()``'s state, drawing sticky actions and frameskips from rng; returns the screen."""
        from ale_py import Action, ALEState

        emulator, screen, previous = saved
        self.ale.restoreState(ALEState(emulator[:-COLOUR_TABLE]))
        self.frame[...] = screen  # the emulator's state does not hold its last screen
        self._restored_reds = np.frombuffer(emulator[-COLOUR_TABLE:], dtype=np.uint8).copy()
        self._previous = Action(previous)
        self._rng = rng
        return self.frame

    def _screen_reds(self):
        """uint8 (256,): the red value of each palette index on the current screen (0 for the others)."""
        if self._restored_reds is not None:  # the emulator has not drawn the screen restore() returned
            return self._restored_reds
        indices = np.empty(FRAME_SHAPE[:2], dtype=np.uint8)
        self.ale.getScreen(indices)
        reds = np.zeros(COLOUR_TABLE, dtype=np.uint8)
        reds[indices.ravel()] = self.rgb()[..., 0].ravel()
        return reds

    def step(self, action):
        """Play action (an index into the minimal action set); returns (frame, reward, done).

        ``lost_life`` then says whether the step lost a life and the game goes
        on. In a game that serves on FIRE (``fire_to_start``), such a step is
        followed by one more step of FIRE, its reward included.
        """
        self._restored_reds = None
        lives = self.ale.lives()
        reward = self._act(self.actions[action])
        done = self.ale.game_over()
        self.lost_life = self.ale.lives() < lives and not done
        if self.fire_to_start and self.lost_life:
            reward += self._act(self._fire)
        self._read_screen(self.frame)
        return self.frame, float(reward), done

    def _act(self, requested):
        """One agent step of the ALE action ``requested``: frameskip frames, each sticky as ALE's; the reward."""
        rng = self._rng
        low, high = self._frameskip_range
        n_frames = low if high - low == 1 else int(rng.integers(low, high))
        reward = 0
        sticky = self.sticky_probability
        if sticky > 0.0:
            draws = rng.random(n_frames).tolist()
        for i in range(n_frames):
            # As ALE's sticky actions: each frame repeats the previous action with this probability.
            if sticky == 0.0 or draws[i] >= sticky:
                self._previous = requested
            reward += self.ale.act(self._previous)
        return reward
