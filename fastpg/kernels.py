"""The compiled kernels: the same functions as :mod:`fastpg.reference`,
plus the trainer's sparse entry points.

Importing this module fails loudly when the Cython extensions are not built,
so nothing ever falls back to numpy by accident.
"""
try:
    from ._actor import (ActorStepper, actor_critic_forward, adam_update, expand_frame_record, ppo_backward,
                         touched_columns)
    from ._gae import gae
    from ._policy import policy_backward, policy_forward
    from ._preprocess import preprocess
    from ._returns import discount_rewards
    from ._rmsprop import rmsprop_update
    from ._rollout import PolicyStepper, sparse_backward
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "fastpg's compiled kernels are not built. Install the package with "
        "`pip install .` (from a source checkout, run tests against the installed "
        "package, not the source tree)."
    ) from exc

__all__ = [
    "preprocess",
    "discount_rewards",
    "gae",
    "policy_forward",
    "policy_backward",
    "rmsprop_update",
    "PolicyStepper",
    "sparse_backward",
    "ActorStepper",
    "actor_critic_forward",
    "ppo_backward",
    "adam_update",
    "expand_frame_record",
    "touched_columns",
]
