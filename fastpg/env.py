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


class AtariGame:
    """One emulator. ``reset(rng)`` starts an episode; ``step(action)`` plays one agent step.

    Observations are written into one buffer that each call overwrites (copy
    it to keep it): uint8 (210, 160, 3) RGB frames, or with
    ``screen="palette"`` uint8 (210, 160) palette indices, a 1 us read
    instead of 31 us; ``rgb()`` then reads the RGB screen when it is needed.
    """

    def __init__(self, env_id="ALE/Pong-v5", screen="rgb"):
        from ale_py import ALEInterface, LoggerMode, roms

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
        self.actions = self.ale.getMinimalActionSet()
        self._noop = self.actions[0]
        if screen not in SCREENS:
            raise ValueError(f"screen must be one of {SCREENS}, got {screen!r}")
        self._read_screen = self.ale.getScreenRGB if screen == "rgb" else self.ale.getScreen
        self.frame = np.empty(FRAME_SHAPE if screen == "rgb" else FRAME_SHAPE[:2], dtype=np.uint8)
        self._rgb = np.empty(FRAME_SHAPE, dtype=np.uint8)
        self._rng = None
        self._previous = self._noop

    def reset(self, rng):
        """Start an episode whose randomness (sticky actions, frameskip) comes from rng."""
        self._rng = rng
        self._previous = self._noop
        self.ale.reset_game()
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
        indices = np.empty(FRAME_SHAPE[:2], dtype=np.uint8)
        self.ale.getScreen(indices)
        red = self.rgb()[..., 0]
        lut[indices.ravel()] = is_foreground(red.ravel())

    def save(self):
        """The game's state between agent steps: (emulator bytes, screen copy, sticky action)."""
        return self.ale.cloneState().serialize(), self.frame.copy(), int(self._previous.value)

    def restore(self, saved, rng):
        """Continue from ``save()``'s state, drawing sticky actions and frameskips from rng; returns the screen."""
        from ale_py import Action, ALEState

        emulator, screen, previous = saved
        self.ale.restoreState(ALEState(emulator))
        self.frame[...] = screen  # the emulator's state does not hold its last screen
        self._previous = Action(previous)
        self._rng = rng
        return self.frame

    def step(self, action):
        """Play action (an index into the minimal action set); returns (frame, reward, done)."""
        rng = self._rng
        low, high = self._frameskip_range
        n_frames = low if high - low == 1 else int(rng.integers(low, high))
        requested = self.actions[action]
        reward = 0
        sticky = self.sticky_probability
        if sticky > 0.0:
            draws = rng.random(n_frames).tolist()
        for i in range(n_frames):
            # As ALE's sticky actions: each frame repeats the previous action with this probability.
            if sticky == 0.0 or draws[i] >= sticky:
                self._previous = requested
            reward += self.ale.act(self._previous)
        self._read_screen(self.frame)
        return self.frame, float(reward), self.ale.game_over()
