"""The interface between the training loop and a learning algorithm, and the registry of algorithms.

An algorithm class ``A`` provides:

- ``A.name``: what ``--algo`` and the run's config call it;
- ``A.task_unit``: what a worker plays per task, ``"episode"`` (an episode
  index) or ``"segment"`` (a :class:`fastpg.lanes.Segment`);
- ``A.reports_updates``: whether its instances report each update's
  statistics (``take_finished_updates``), which training logs to updates.csv;
- ``A.episodes_per_batch(config)``: episodes per update, or None when a
  batch is not made of whole episodes;
- ``A.state_arrays(spec, config=None)``: name -> :class:`fastpg.policy.ArraySpec`
  of the arrays it checkpoints besides the policy's parameters (optimiser
  state, and with the config, lane state);
- ``A.initial_state(spec, config)``: those arrays at the start of a run;
- ``A.initial_json(config)``: its JSON-ready state at the start of a run;
- ``A.working_bytes(spec)``: the memory its float64 arrays take, checked
  against the machine before a run starts;
- ``A(config, spec, parameters, state, backend, saved=None, early_parameters=None)``:
  a learner that updates ``parameters`` (the arrays the workers play with) in
  place; ``saved`` is its ``json_state()`` from a checkpoint.
  ``early_parameters``, where the pool has them, are a second set the
  workers can play, for tasks handed out before their batch (``early_tasks``).

and its instances:

- ``next_tasks(run_state)``: the tasks of the next batch, all played with the
  current parameters;
- ``observe(result)``: take in one task's result, in task order; returns
  (env steps, [(reward, length, step) of each episode that ended in it]);
- ``early_tasks()``: tasks of the next batch that may be played already
  (each returned once; ``next_tasks`` then returns the same objects), or [];
- ``update(run_state)``: learn from the batch (``run_state`` is the state
  before it); it may return with the update still running (PPO's
  ``--policy-lag 1``), and raises :class:`fastpg.divergence.NonFiniteArrays`
  when an update leaves the learner's arrays non-finite;
- ``batch_sent()``: the next batch's first tasks are with the workers (an
  overlapped update starts here, so that starting it does not hold them up);
- ``flush()``: finish an update still running (raising as ``update``);
- ``discard()``: forget a batch abandoned part way;
- ``arrays()`` and ``json_state()``: everything a checkpoint holds, so that a
  resumed run continues exactly (valid after ``flush()``). What they return
  must stay as it is until the next ``update``: the training loop writes a
  checkpoint in a thread while the next batch is observed;
- ``last_stats``: None, or a dict of the statistics of the update that made
  the weights the workers play.
- with ``reports_updates``, ``take_finished_updates()``: [(update number,
  env steps played when its batch ended, statistics dict)] of the updates
  finished since the last call, oldest first (numbered from 1, as
  ``run_state.updates`` counts them); and
  ``json_state()["learned_stats"]``: the statistics of the checkpoint's
  latest update.
"""
from .ppo import PPO
from .reinforce import Reinforce

ALGORITHMS = {cls.name: cls for cls in (Reinforce, PPO)}


def get_algorithm(name):
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown --algo {name!r}; choose from {', '.join(ALGORITHMS)}") from None
