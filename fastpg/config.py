"""A run's settings: the defaults, the presets and their help text, written once.

The command line builds its options and ``--help`` from :class:`Config`'s
fields, so a default changed here changes everywhere.
"""
import dataclasses
import math
import os

from .algorithm import get_algorithm
from .policy import ActorCriticSpec, PolicySpec


def _setting(default, help, metavar=None):
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run's result depends on (with the episode count).

    Settings left at None take their algorithm's default
    (:data:`ALGORITHM_DEFAULTS`); a setting of another algorithm stays None,
    and giving one is an error. The default algorithm is the actor-critic,
    which beat REINFORCE in the runs of docs/runs/ (README, "Solving Pong").
    The REINFORCE defaults differ from the seed's in two settings: a 10x
    larger learning rate, and an update every 2 episodes instead of every 10.
    """

    env: str = _setting("ALE/Pong-v5", "gymnasium Atari id (Pong-v0 is the seed's)", "ID")
    algo: str = _setting("ppo", "learning algorithm")
    actions: str = _setting(None, "the actions the policy plays: comma-separated names from the game's minimal "
                                  "action set (None: the game's default, saved by name when the run starts: Pong's "
                                  "NOOP,RIGHT,LEFT, or with --algo reinforce its up and down, RIGHT,LEFT; another "
                                  "game's whole set, or with --algo reinforce its two declared actions)", "NAMES")
    seed: int = _setting(0, "the run's seed")
    hidden: int = _setting(200, "hidden units")
    learning_rate: float = _setting(None, "step size (RMSProp for reinforce, Adam for ppo)")
    gamma: float = _setting(0.99, "reward discount")
    batch_size: int = _setting(None, "reinforce: episodes per RMSProp update")
    decay_rate: float = _setting(None, "reinforce: RMSProp decay")
    lanes: int = _setting(None, "ppo: independent game streams; a batch is one segment of each")
    segment_steps: int = _setting(None, "ppo: steps per lane per batch")
    epochs: int = _setting(None, "ppo: passes over each batch")
    minibatches: int = _setting(None, "ppo: minibatches (Adam steps) per epoch")
    max_kl: float = _setting(None, "ppo: the most mean KL(old || new) an update may reach")
    lr_decay_steps: int = _setting(None, "ppo: env steps over which the learning rate falls linearly to 0, "
                                         "where training stops (0: constant, no end)", "STEPS")
    clip: float = _setting(None, "ppo: the surrogate's ratio clip")
    ent_coef: float = _setting(None, "ppo: entropy bonus weight")
    ent_decay_steps: int = _setting(None, "ppo: env steps over which the entropy weight falls linearly to 0 and "
                                          "stays there (0: constant)", "STEPS")
    optimizer: str = _setting(None, "ppo: 'adam' (every weight takes every step) or 'lazy-adam' (a minibatch steps "
                                    "only the first layer's columns of the inputs its rows see, and their moments; "
                                    "the others wait: about a ninth of Adam's work)")
    vf_coef: float = _setting(None, "ppo: value loss weight")
    lam: float = _setting(None, "ppo: GAE lambda")
    baseline: str = _setting(None, "ppo: 'value' (GAE from the learned value) or 'none' (discounted returns, "
                                   "cut at segment ends; an ablation)")
    life_loss: str = _setting(None, "ppo: 'continue' (a lost life is just a step: the episode is the whole game) "
                                    "or 'terminal' (the advantages treat a lost life as the episode's end; the game "
                                    "plays on)")
    inputs: str = _setting(None, "ppo: what the network sees: 'difference' (the 80x80 difference frame, the "
                                 "seed's input) or 'difference+frame' (the difference and the current binary "
                                 "frame, 12,800 sparse inputs)")
    policy_lag: int = _setting(None, "ppo: 0 (each batch is played with the weights of the update before it) or 1 "
                                     "(with those one update older, so that each update runs while the workers "
                                     "play the next batch)")

    def __post_init__(self):
        for name, value in ALGORITHM_DEFAULTS.get(self.algo, {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @classmethod
    def of_checkpoint(cls, saved_config, where):
        """The Config a checkpoint saved, with the settings older fastpg did not save at their old values."""
        from .checkpoint import CheckpointError

        legacy = {"algo": "reinforce"}  # fastpg 0.1 had only reinforce
        if saved_config.get("algo") == "ppo":
            legacy["life_loss"] = "continue"  # before 0.4 a lost life never ended the advantages' episode
            legacy["policy_lag"] = 0  # before 0.5 every update waited for its batch
            legacy["lr_decay_steps"] = 0  # before 0.7 the learning rate was constant
            legacy["inputs"] = "difference"  # before 0.12 the network saw the difference frame alone
            legacy["ent_decay_steps"] = 0  # before 0.14 the entropy weight was constant
            legacy["optimizer"] = "adam"  # before 0.15 Adam stepped every weight
        settings = {**legacy, **saved_config}
        if settings["algo"] == "ppo" and settings.get("actions") is None and _is_pong(settings.get("env", cls.env)):
            settings["actions"] = "RIGHT,LEFT"  # before 0.18 Pong's default was up and down; runs now save names
        try:
            return cls(**settings)
        except TypeError as exc:
            raise CheckpointError(f"{where}: checkpoint config does not match this fastpg ({exc})") from None

    def with_named_actions(self):
        """This Config with its actions spelled out by name (raises ValueError), as a new run saves them."""
        from .games import chosen_actions

        return dataclasses.replace(self, actions=",".join(chosen_actions(self.env, self.actions, self.algo)))

    def policy(self):
        """The network this run trains, on its game's screen rule and actions (raises ValueError)."""
        from .games import game_profile, resolve_actions

        frame = game_profile(self.env).frame
        actions = resolve_actions(self.env, self.actions, self.algo)
        if self.algo == "ppo":
            return ActorCriticSpec(hidden=self.hidden, actions=actions, frame=frame, inputs=self.inputs)
        return PolicySpec(hidden=self.hidden, actions=actions, frame=frame)

    def validate(self):
        """Raise ValueError, naming the option, for a setting fastpg cannot run."""
        from .env import atari_settings

        algorithm_class = get_algorithm(self.algo)
        for name in ALGORITHM_SETTINGS:
            if name not in ALGORITHM_DEFAULTS[self.algo] and getattr(self, name) is not None:
                owner = next(algo for algo, names in ALGORITHM_DEFAULTS.items() if name in names)
                raise ValueError(f"{option_name(name)} is a setting of --algo {owner}, not of --algo {self.algo}")
        for name in ("batch_size", "lanes", "segment_steps", "epochs", "minibatches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{option_name(name)} must be at least 1, got {value}")
        if self.algo == "ppo" and self.minibatches > self.lanes * self.segment_steps:
            raise ValueError(f"--minibatches ({self.minibatches}) must not exceed a batch's steps "
                             f"(--lanes x --segment-steps = {self.lanes * self.segment_steps})")
        for name in ("learning_rate", "max_kl", "clip"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ValueError(f"{option_name(name)} must be positive and finite, got {value}")
        for name in ("ent_coef", "vf_coef"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise ValueError(f"{option_name(name)} must be non-negative and finite, got {value}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"--gamma must be in [0, 1], got {self.gamma}")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ValueError(f"--baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.life_loss is not None and self.life_loss not in LIFE_LOSS:
            raise ValueError(f"--life-loss must be one of {', '.join(LIFE_LOSS)}, got {self.life_loss!r}")
        if self.policy_lag is not None and self.policy_lag not in POLICY_LAGS:
            raise ValueError(f"--policy-lag must be one of {', '.join(map(str, POLICY_LAGS))}, got {self.policy_lag}")
        for name in ("lr_decay_steps", "ent_decay_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{option_name(name)} must be non-negative, got {value}")
        if self.lam is not None and not 0 <= self.lam <= 1:
            raise ValueError(f"--lam must be in [0, 1], got {self.lam}")
        if self.decay_rate is not None and not 0 <= self.decay_rate < 1:
            raise ValueError(f"--decay-rate must be in [0, 1), got {self.decay_rate}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        spec = self.policy()  # checks --hidden and --inputs
        check_memory(algorithm_class.working_bytes(spec), f"--hidden {self.hidden}")
        atari_settings(self.env)


# Each algorithm's own settings and their defaults (PPO's from the runs in docs/runs/; ent_coef 0.05 since 0.19:
# Pong's evals on seeds 0-2 rose from +18.4, +18.8 and +17.85 at 0.03 to +18.6, +19.3 and +18.3).
ALGORITHM_DEFAULTS = {
    "reinforce": {"learning_rate": 1e-3, "batch_size": 2, "decay_rate": 0.99},
    "ppo": {"learning_rate": 1e-3, "lanes": 32, "segment_steps": 128, "epochs": 4, "minibatches": 2,
            "max_kl": 0.02, "clip": 0.2, "ent_coef": 0.05, "vf_coef": 0.5, "lam": 0.95, "baseline": "value",
            "life_loss": "terminal", "policy_lag": 1, "lr_decay_steps": 11_000_000,
            "ent_decay_steps": 11_000_000, "optimizer": "lazy-adam",
            "inputs": "difference+frame"},
}
BASELINES = ("value", "none")
LIFE_LOSS = ("continue", "terminal")
OPTIMIZERS = ("adam", "lazy-adam")
POLICY_LAGS = (0, 1)
ALGORITHM_SETTINGS = sorted({name for names in ALGORITHM_DEFAULTS.values() for name in names} - {"learning_rate"})


def _is_pong(env_id):
    from .env import EnvError, atari_settings

    try:
        return atari_settings(env_id)["game"] == "pong"
    except EnvError:  # an unknown id is reported where the run needs its game
        return False


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
SEED_SETTINGS = {"algo": "reinforce", "hidden": 200, "batch_size": 10, "learning_rate": 1e-4, "gamma": 0.99, "decay_rate": 0.99}
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
    defaults = {algo: values[field.name] for algo, values in ALGORITHM_DEFAULTS.items() if field.name in values}
    default = (", ".join(f"{value} with --algo {algo}" for algo, value in defaults.items()) if defaults
               else field.default)
    text = f"{field.metadata['help']} (default {default}"
    for preset, settings in sorted(PRESETS.items()):
        if field.name in settings and settings[field.name] != field.default:
            text += f"; --preset {preset}: {settings[field.name]}"
    return text + ")"
