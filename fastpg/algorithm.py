"""The interface between the training loop and a learning algorithm, and the registry of algorithms.

An algorithm class ``A`` provides:

- ``A.name``: what ``--algo`` and the run's config call it;
- ``A.state_arrays(spec)``: name -> :class:`fastpg.policy.ArraySpec` of the
  arrays it checkpoints besides the policy's parameters (optimiser state);
- ``A.initial_state(spec)``: those arrays at the start of a run;
- ``A.working_bytes(spec)``: the memory its float64 arrays take, checked
  against the machine before a run starts;
- ``A(config, spec, parameters, state, backend)``: a learner that updates
  ``parameters`` (the arrays the workers play with) in place.

and its instances:

- ``next_tasks(episodes_done)``: the episode indices the next batch plays, all
  with the current parameters;
- ``observe(episode)``: take in one finished episode, in index order;
- ``update()``: learn from the batch's episodes;
- ``discard()``: forget a batch abandoned part way;
- ``arrays()``: name -> array of everything a checkpoint holds (parameters and
  state), so that a resumed run continues exactly.
"""
from .reinforce import Reinforce

ALGORITHMS = {cls.name: cls for cls in (Reinforce,)}


def get_algorithm(name):
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown --algo {name!r}; choose from {', '.join(ALGORITHMS)}") from None
