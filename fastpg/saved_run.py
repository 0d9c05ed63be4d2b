"""A saved run's policy, read from its checkpoint: what eval, video, weights and the benchmarks play with."""
from .checkpoint import check_fits, load
from .config import Config
from .policy import aligned_copy


def load_run(path):
    """(params, spec, state, config) of the checkpoint in a run directory or a checkpoint.npz.

    The parameters are copies laid out as training holds them: in the spec's memory order, each starting a
    cache line (the kernels' vector loads then split none). Raises CheckpointError as
    :func:`fastpg.checkpoint.load` does, and when the arrays do not fit the run's own settings.
    """
    arrays, state = load(path)
    config = Config.of_checkpoint(state["config"], path)
    spec = config.policy()  # the run's game rule and actions
    params = {name: arrays[name] for name in spec.parameters() if name in arrays}
    check_fits(path, params, spec.parameters())
    return ({name: aligned_copy(params[name], declared.order) for name, declared in spec.parameters().items()},
            spec, state, config)
