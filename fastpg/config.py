"""A run's settings: the defaults, the presets and their help text, written once.

The command line builds its options and ``--help`` from :class:`Config`'s
fields, so a default changed here changes everywhere.
"""
import dataclasses
import math
import os

from .algorithm import get_algorithm
from .policy import PolicySpec


def _setting(default, help, metavar=None):
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run's result depends on (with the episode count).

    The defaults differ from the seed's in two settings, chosen by the learning
    runs in docs/runs/ (README, "Learning Pong in an hour"): a 10x larger
    learning rate, and an update every 2 episodes instead of every 10.
    """

    env: str = _setting("ALE/Pong-v5", "gymnasium Atari id (Pong-v0 is the seed's)", "ID")
    algo: str = _setting("reinforce", "learning algorithm")
    seed: int = _setting(0, "the run's seed")
    hidden: int = _setting(200, "hidden units")
    batch_size: int = _setting(2, "episodes per RMSProp update")
    learning_rate: float = _setting(1e-3, "RMSProp step size")
    gamma: float = _setting(0.99, "reward discount")
    decay_rate: float = _setting(0.99, "RMSProp decay")

    def policy(self):
        return PolicySpec(hidden=self.hidden)

    def validate(self):
        """Raise ValueError, naming the option, for a setting fastpg cannot run."""
        from .env import atari_settings

        algorithm_class = get_algorithm(self.algo)
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 < self.learning_rate < math.inf:
            raise ValueError(f"--learning-rate must be positive and finite, got {self.learning_rate}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"--gamma must be in [0, 1], got {self.gamma}")
        if not 0 <= self.decay_rate < 1:
            raise ValueError(f"--decay-rate must be in [0, 1), got {self.decay_rate}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        spec = self.policy()  # checks --hidden
        check_memory(algorithm_class.working_bytes(spec), f"--hidden {self.hidden}")
        atari_settings(self.env)


def check_memory(needed, what):
    """Raise ValueError when ``needed`` bytes exceed the machine's physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on Linux: the allocation itself will tell
        return
    if needed > total:
        raise ValueError(f"{what} needs about {needed / 2**30:,.1f} GiB for the weights, optimiser state and "
                         f"gradient, more than this machine's {total / 2**30:,.1f} GiB")


DEFAULTS = Config()

# The seed post's hyperparameters. With them the learner is the seed algorithm exactly: returns
# standardised per episode, gradients summed over 10 episodes, one RMSProp step per batch.
SEED_SETTINGS = {"hidden": 200, "batch_size": 10, "learning_rate": 1e-4, "gamma": 0.99, "decay_rate": 0.99}
PRESETS = {"seed": SEED_SETTINGS}
PRESET_HELP = {"seed": "the seed post's hyperparameters"}


class TrainingError(Exception):
    """A problem with the run directory or arguments, reported as one line."""


def preset_overrides(preset, given):
    """Config fields for a run: the preset's values (None: the defaults), then those given explicitly.

    given maps Config fields to values, None meaning "not given".
    """
    if preset is not None and preset not in PRESETS:
        raise TrainingError(f"unknown --preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    overrides = dict(PRESETS.get(preset, {}))
    overrides.update({name: value for name, value in given.items() if value is not None})
    return overrides


def option_name(field_name):
    return "--" + field_name.replace("_", "-")


def describe_preset(name):
    """'the seed post's hyperparameters (--batch-size 10 --learning-rate 0.0001)': only what differs from the defaults."""
    changed = " ".join(f"{option_name(k)} {v}" for k, v in PRESETS[name].items() if getattr(DEFAULTS, k) != v)
    return f"{PRESET_HELP[name]} ({changed})" if changed else PRESET_HELP[name]


def setting_help(field):
    """A Config field's --help text: what it is, its default, and each preset's value where it differs."""
    text = f"{field.metadata['help']} (default {field.default}"
    for preset, settings in sorted(PRESETS.items()):
        if field.name in settings and settings[field.name] != field.default:
            text += f"; --preset {preset}: {settings[field.name]}"
    return text + ")"
