"""The actor-critic (``--algo ppo``): GAE advantages from a learned value, several epochs of
minibatch steps on a clipped surrogate, and a KL limit checked by a line search.

A batch is one segment from every lane, all played with the same weights.
After the epochs, the mean KL between the batch's old policy and the new one
is measured on the whole batch; past ``--max-kl``, the update's step is
halved until the KL is within the limit (or undone). Adam's moments keep
what the epochs gave them.

With ``--policy-lag 1`` the update runs in a thread of the learner's process
while the workers play the next batch, which is therefore played with the
weights one update older: batch k with the weights after update k - 2 (the
first two with the initial weights). The schedule is fixed, so a run still
depends only on its seed and settings. The learner keeps its own weights and
copies them into the workers' (``parameters``) between batches; the
surrogate and the KL limit are taken around the learner's weights, with the
advantages importance-weighted for the older policy that played them
(``reference.lagged_advantages``, with the log-probabilities the workers
recorded as they played). A checkpoint waits for the update in flight and
holds both sets of weights, so a resume continues exactly.

Where the workers have a second set of weights (``early_parameters``: local
processes since 0.24, Ray actors since 0.25), the two sets take turns: the
update in flight publishes its weights into the set the current batch does
not play as soon as it ends, and from then on each lane's next segment goes
out as soon as the lane's current one is back (``early_tasks``), so no
worker waits for the batch's last segment. The weights and lane states are
the ones the barrier between batches would give, so the run is the same.

With ``--optimizer lazy-adam`` each minibatch's Adam step covers only W1's
columns of the inputs its rows list, and the other columns wait, moments
and all, until a minibatch lists them: about a ninth of Adam's work on
Pong, where a 1,024-step minibatch sees some 1,400 of 12,800 inputs.

The math is :mod:`fastpg.reference`'s ``ppo_loss``, ``adam_update``
(``columns`` for the lazy step, from ``touched_columns``), ``gae``,
``softmax_kl`` and ``lagged_advantages``.
"""
import collections
import threading

import numpy as np

from .background import Background
from .constants import N_PIXELS
from .divergence import check_finite
from .lanes import LaneState, Segment
from .policy import ArraySpec, aligned_copy, aligned_zeros
from .reference import lagged_advantages, linear_decay, log_softmax, softmax_kl

UPDATE_SPAWN_KEY = 2**32 - 3  # the minibatch shuffles' stream of the run's seed
BACKTRACK_HALVINGS = 6  # step fractions 1/2 ... 1/64, then the epoch is undone
SCREEN_SHAPE = (210, 160)
LAG_WEIGHT_CAP = 2.0  # the most a lagged step's importance weight may be (bounds the variance it adds)


class PPO:
    """The actor-critic learner behind the algorithm interface (see :mod:`fastpg.algorithm`)."""

    name = "ppo"
    task_unit = "segment"
    reports_updates = True

    @staticmethod
    def episodes_per_batch(config):
        return None

    def __init__(self, config, spec, parameters, state, backend, saved=None, early_parameters=None):
        self.config, self.spec, self.backend = config, spec, backend
        self.lagged = config.policy_lag == 1
        # The sets of weights the workers play: with lag and a second set, batches alternate between them.
        self.play_sets = [parameters] + ([early_parameters] if self.lagged and early_parameters is not None else [])
        self.playing = 0  # the set of the batch in play (the next batch's, between update and next_tasks)
        self.next_published = threading.Event()  # the next batch's weights are in the other set already
        self.early = {}  # lane -> the Segment of the next batch handed out early
        self.batch = 0  # the number of the batch in play
        # The learner's weights; with a lag, its own, published to the workers' between batches.
        self.params = ({name: aligned_copy(state[name], array.order) for name, array in spec.parameters().items()}
                       if self.lagged else parameters)
        if self.lagged:
            for name, array in parameters.items():
                array[...] = state[f"play_{name}"]
        self.learning = None  # the thread of the update in flight, with lag
        self.pending_batch = 0  # with lag, the number of the batch it learns from
        # Adam's moments, each in its parameter's memory order (the kernel walks them in step).
        self.moments = {name: tuple(aligned_copy(state[f"adam_{moment}_{name}"], array.order) for moment in "mv")
                        for name, array in spec.parameters().items()}
        # The minibatch's gradient: the backward adds into it and Adam zeroes it as it reads it, so it is
        # zero between steps without a pass of its own.
        self.grads = spec.zero_parameters()
        # The weights an update starts from, for its line search. With lag the workers' copy is exactly
        # that while the update runs (update() publishes the learner's weights just before it starts).
        self.before = None if self.lagged else spec.zero_parameters()
        saved = saved or self.initial_json(config)
        self.adam_steps = int(saved["adam_steps"])
        self.lanes = [_lane_from_json(lane, state, i) for i, lane in enumerate(saved["lanes"])]
        self.results = []
        self._hidden = None  # see _hidden_layers
        # The update columns of the metrics: the statistics of the update that made the weights being played.
        self.last_stats = saved.get("last_stats")  # a resumed run logs them as if never stopped
        self.learned_stats = saved.get("learned_stats", self.last_stats)  # of the learner's weights
        # (update number, env steps when its batch ended, statistics) of each update finished since
        # take_finished_updates() last emptied it; flush() may add to it from a checkpoint's thread.
        self.finished = collections.deque()
        self.pending_steps = 0  # with lag, the env steps when the batch of the update in flight ended

    # --- class-level declarations ---

    @staticmethod
    def state_arrays(spec, config=None):
        arrays = {}
        for name, array in spec.parameters().items():
            arrays[f"adam_m_{name}"] = array
            arrays[f"adam_v_{name}"] = array
        if config is not None and config.policy_lag == 1:
            for name, array in spec.parameters().items():
                arrays[f"play_{name}"] = array
        if config is not None:
            arrays["lane_screens"] = ArraySpec((config.lanes, *SCREEN_SHAPE), dtype="uint8")
            arrays["lane_previous"] = ArraySpec((config.lanes, N_PIXELS), dtype="uint8")
            arrays["lane_emulators"] = ArraySpec((config.lanes, None), dtype="uint8")
        return arrays

    @classmethod
    def working_bytes(cls, spec):
        """Seven copies of the parameters: the weights, Adam's two moments, the gradient, and the line
        search's two ends. Its start is a copy without lag; with lag it is the workers' weights, the sixth
        copy is the learner's own weights, and the seventh the workers' second set."""
        return 7 * spec.parameter_bytes()

    @classmethod
    def initial_state(cls, spec, config):
        arrays = {name: array.zeros() for name, array in cls.state_arrays(spec).items()}
        if config.policy_lag == 1:  # the first batches are played with the initial weights
            arrays.update({f"play_{name}": array for name, array in spec.initial_parameters(config.seed).items()})
        arrays["lane_screens"] = np.zeros((config.lanes, *SCREEN_SHAPE), dtype=np.uint8)
        arrays["lane_previous"] = np.zeros((config.lanes, N_PIXELS), dtype=np.uint8)
        arrays["lane_emulators"] = np.zeros((config.lanes, 0), dtype=np.uint8)
        return arrays

    @staticmethod
    def initial_json(config):
        lanes = [LaneState.start(config.seed, lane) for lane in range(config.lanes)]
        return {"adam_steps": 0, "lanes": [_lane_json(lane, 0) for lane in lanes]}

    @property
    def play_params(self):
        """The weights the batch in play is played with."""
        return self.play_sets[self.playing]

    # --- the interface ---

    def next_tasks(self, state):
        """The batch's segments: those handed out early by early_tasks, the same objects, and the rest."""
        early, self.early = self.early, {}
        self.batch = state.updates
        return [early.get(lane) or self._segment(lane, state.updates, lane_state, self.playing)
                for lane, lane_state in enumerate(self.lanes)]

    def _segment(self, lane, batch, lane_state, weights):
        c = self.config
        return Segment(lane, batch, c.segment_steps, lane_state, c.life_loss == "terminal", weights)

    def observe(self, result):
        """Keep one lane's segment; returns (steps, [(reward, length, step) of the episodes it ended])."""
        self.results.append(result)
        return len(result["rewards"]), result["episodes"]

    def early_tasks(self):
        """The next batch's segments that can go out now, before this batch ends: once its weights are
        published, one for each lane whose segment of this batch is back (each handed out once)."""
        if not self.next_published.is_set():
            return []
        weights = 1 - self.playing
        tasks = []
        for result in self.results:
            if result["lane"] not in self.early:
                self.early[result["lane"]] = self._segment(result["lane"], self.batch + 1, result["state"], weights)
                tasks.append(self.early[result["lane"]])
        return tasks

    def discard(self):
        self.results = []
        self.early = {}

    def update(self, state):
        """Learn from the batch's segments (in lane order) and move the lanes on.

        With lag, this finishes the update in flight, hands its weights to the
        workers, and readies learning from this batch in the background, which
        batch_sent (or flush) starts.
        Raises NonFiniteArrays when an update leaves any weight or moment
        non-finite (the workers never play such weights).
        """
        results, self.results = self.results, []
        self.lanes = [r["state"] for r in results]
        steps_after = state.env_steps + sum(len(r["rewards"]) for r in results)
        if not self.lagged:
            self.last_stats, finite = self._learn(results, False)
            self.learned_stats = self.last_stats
            self.finished.append((state.updates + 1, steps_after, self.last_stats))
            self._check(state.updates, finite)
            return
        self.flush()
        self.last_stats = self.learned_stats
        following = (self.playing + 1) % len(self.play_sets)
        if not self.next_published.is_set():  # (always, with one set: the batch in play has ended)
            self._publish(following)
        self.next_published.clear()
        self.playing = following
        self.pending_batch, self.pending_steps = state.updates, steps_after
        self.learning = Background(self._learn_lagged, results, name="fastpg-update")

    def _publish(self, weights):
        for name, array in self.play_sets[weights].items():
            array[...] = self.params[name]

    def _learn_lagged(self, results):
        """_learn in the update's thread; with two sets of weights, its weights then go straight to the set the
        batch in play does not use (a batch never plays weights that failed the finite check)."""
        stats, finite = self._learn(results, True)
        if finite and len(self.play_sets) == 2:
            self._publish(1 - self.playing)
            self.next_published.set()
        return stats, finite

    def batch_sent(self):
        """Start the update readied by update(), now that the workers have their tasks (starting a thread
        keeps the sending thread from the interpreter's lock for milliseconds)."""
        if self.learning is not None:
            self.learning.start()

    def flush(self):
        """Finish the update in flight, if any: afterwards arrays() and json_state() are a checkpoint's.

        Raises NonFiniteArrays as update does.
        """
        if self.learning is None:
            return
        learning, self.learning = self.learning, None
        self.learned_stats, finite = learning.result()
        self.finished.append((self.pending_batch + 1, self.pending_steps, self.learned_stats))
        self._check(self.pending_batch, finite)

    def take_finished_updates(self):
        """[(update number, env steps when its batch ended, its statistics)] of the updates finished since
        the last call, oldest first."""
        taken = []
        while self.finished:
            taken.append(self.finished.popleft())
        return taken

    def _check(self, batch, finite):
        """Raise NonFiniteArrays for a non-finite weight or moment, unless the update knows it left none."""
        if finite:
            return
        check_finite({**self.params, **{f"adam_{k}_{name}": moment for name, moments in self.moments.items()
                                        for k, moment in zip("mv", moments)}}, batch)

    def _learn(self, results, lagged):
        """The update from one batch's results; returns (its statistics, True when Adam reported every weight
        and moment finite and no line search changed them since). lagged: whether older weights than the
        learner's played it."""
        c, backend = self.config, self.backend
        record = _concatenate([r["record"] for r in results])
        if "keyframes" in record:  # a frame-seeing network's compact record: rebuild the frames the kernels read
            record["indices"], record["signs"], record["offsets"] = backend.expand_frame_record(
                record["indices"], record["signs"], record["offsets"], record["keyframes"])
        n_rows = len(record["offsets"]) - 1
        S = c.segment_steps
        logits = np.zeros((n_rows, self.spec.n_actions))
        values = np.zeros(n_rows)
        # The hidden layers, kept for the first minibatch: its weights are still these.
        hidden = self._hidden_layers(n_rows)
        backend.actor_critic_forward(self.params, record["indices"], record["signs"], record["offsets"], logits, values,
                                     hidden=hidden)
        rows = np.concatenate([lane * (S + 1) + np.arange(S) for lane in range(len(results))]).astype(np.int64)
        advantages, returns = [], []
        no_baseline = c.baseline == "none"
        for lane, r in enumerate(results):
            v = values[lane * (S + 1): (lane + 1) * (S + 1)]
            if no_baseline:  # GAE(1) with V = 0: the discounted returns themselves
                v = np.zeros(S + 1)
            a, R = backend.gae(r["rewards"], np.ascontiguousarray(v[:S]), r["dones"], v[S], c.gamma,
                               1.0 if no_baseline else c.lam)
            advantages.append(a)
            returns.append(R)
        advantages, returns = np.concatenate(advantages), np.concatenate(returns)
        explained = _explained_variance(values[rows], returns)
        std = advantages.std()
        advantages = (advantages - advantages.mean()) / (std if std > 0 else 1.0)
        choices = record["choices"][rows]
        old_logits = logits[rows]
        logp_old = np.ascontiguousarray(log_softmax(old_logits)[np.arange(len(rows)), choices])
        if lagged:
            advantages = lagged_advantages(advantages, logp_old, record["logp"][rows], LAG_WEIGHT_CAP)
        # The batches before this one, counted by the Adam steps they made (a fixed number per batch).
        steps_before = self.adam_steps // (c.epochs * c.minibatches) * c.lanes * c.segment_steps
        learning_rate = linear_decay(c.learning_rate, steps_before, c.lr_decay_steps)
        ent_coef = linear_decay(c.ent_coef, steps_before, c.ent_decay_steps)
        shuffle = np.random.default_rng(np.random.SeedSequence(c.seed, spawn_key=(UPDATE_SPAWN_KEY, self.adam_steps)))
        if lagged:
            before = self.play_params
        else:
            before = self.before
            for name, array in self.params.items():
                before[name][...] = array
        stats, finite = {}, True
        lazy = c.optimizer == "lazy-adam"
        for epoch in range(c.epochs):
            order = shuffle.permutation(len(rows))
            for chunk in np.array_split(order, c.minibatches):
                chunk = np.sort(chunk)  # rows in record order: the same sums whatever the shuffle's layout
                _, stats = backend.ppo_backward(
                    self.params, record["indices"], record["signs"], record["offsets"], rows[chunk], choices[chunk],
                    logp_old[chunk], np.ascontiguousarray(advantages[chunk]), np.ascontiguousarray(returns[chunk]),
                    c.clip, c.vf_coef, ent_coef, self.grads, accumulate=True, hidden=hidden)
                hidden = None  # the step below changes the weights
                self.adam_steps += 1
                # Lazy Adam steps only W1's columns of the inputs the minibatch saw (reference.adam_update).
                columns = (backend.touched_columns(record["indices"], record["offsets"], rows[chunk])
                           if lazy else None)
                for name, w in self.params.items():
                    m, v = self.moments[name]
                    finite &= backend.adam_update(w, self.grads[name], m, v, self.adam_steps, learning_rate,
                                                  clear_gradient=True, columns=columns if name == "W1" else None)
        kl = self._kl(record, rows, old_logits, logits)
        fraction = 1.0
        if kl > c.max_kl:
            kl, fraction = self._backtrack(before, record, rows, old_logits, logits)
            finite = False  # the line search's own arithmetic: check its weights
        return {"kl": kl, "entropy": stats["entropy"], "value_loss": stats["value_loss"],
                "explained_variance": explained, "clip_fraction": stats["clip_fraction"],
                "epochs": c.epochs, "step_fraction": fraction,
                "learning_rate": learning_rate, "ent_coef": ent_coef}, finite

    def _hidden_layers(self, n_rows):
        """A buffer for the batch's hidden layers, kept from update to update: the forward writes every row,
        and a new 6.6 MB array each update cost about 2 ms (page faults and zeroing)."""
        H = self.params["b1"].shape[0]
        if self._hidden is None or self._hidden.shape[0] != n_rows:
            self._hidden = aligned_zeros((n_rows, H))
        return self._hidden

    def _kl(self, record, rows, old_logits, buffer):
        values = np.zeros(len(buffer))
        self.backend.actor_critic_forward(self.params, record["indices"], record["signs"], record["offsets"],
                                          buffer, values)
        return softmax_kl(old_logits, buffer[rows])

    def _backtrack(self, before, record, rows, old_logits, buffer):
        """Scale the update's step by 1/2, 1/4, ... until the KL is within --max-kl; returns (kl, fraction)."""
        after = {name: aligned_copy(array) for name, array in self.params.items()}
        fraction = 1.0
        for _ in range(BACKTRACK_HALVINGS):
            fraction /= 2
            for name, w in self.params.items():
                w[...] = before[name] + fraction * (after[name] - before[name])
            kl = self._kl(record, rows, old_logits, buffer)
            if kl <= self.config.max_kl:
                return kl, fraction
        for name, w in self.params.items():
            w[...] = before[name]
        return self._kl(record, rows, old_logits, buffer), 0.0

    def arrays(self):
        arrays = dict(self.params)
        if self.lagged:
            arrays.update({f"play_{name}": array for name, array in self.play_params.items()})
        for name, (m, v) in self.moments.items():
            arrays[f"adam_m_{name}"], arrays[f"adam_v_{name}"] = m, v
        n = len(self.lanes)
        emulators = [b"" if lane.game is None else lane.game[0] for lane in self.lanes]
        width = max(len(e) for e in emulators)
        arrays["lane_emulators"] = np.zeros((n, width), dtype=np.uint8)
        arrays["lane_screens"] = np.zeros((n, *SCREEN_SHAPE), dtype=np.uint8)
        arrays["lane_previous"] = np.zeros((n, N_PIXELS), dtype=np.uint8)
        for i, lane in enumerate(self.lanes):
            arrays["lane_emulators"][i, :len(emulators[i])] = np.frombuffer(emulators[i], dtype=np.uint8)
            if lane.game is not None:
                arrays["lane_screens"][i] = lane.game[1]
            if lane.previous is not None:
                arrays["lane_previous"][i] = lane.previous
        return arrays

    def json_state(self):
        return {"adam_steps": self.adam_steps, "last_stats": self.last_stats, "learned_stats": self.learned_stats,
                "lanes": [_lane_json(lane, 0 if lane.game is None else len(lane.game[0])) for lane in self.lanes]}


def _lane_json(lane, emulator_bytes):
    return {"policy_rng": lane.policy_rng, "env_rng": lane.env_rng, "emulator_bytes": emulator_bytes,
            "sticky_action": None if lane.game is None else lane.game[2], "has_previous": lane.previous is not None,
            "episode_steps": lane.episode_steps, "episode_reward": lane.episode_reward}


def _lane_from_json(saved, arrays, i):
    game = None
    if saved["emulator_bytes"]:
        emulator = np.ascontiguousarray(arrays["lane_emulators"][i, :saved["emulator_bytes"]]).tobytes()
        game = (emulator, np.array(arrays["lane_screens"][i]), int(saved["sticky_action"]))
    previous = np.array(arrays["lane_previous"][i]) if saved["has_previous"] else None
    return LaneState(saved["policy_rng"], saved["env_rng"], game, previous, int(saved["episode_steps"]),
                     float(saved["episode_reward"]))


def _concatenate(records):
    """One sparse record of several, rows in order (each record's first row is a keyframe, so compact frame
    records join as they are)."""
    offsets = [np.zeros(1, dtype=np.int64)]
    total = 0
    for r in records:
        offsets.append(r["offsets"][1:].astype(np.int64) + total)
        total += len(r["indices"])
    joined = {key: np.concatenate([r[key] for r in records]) for key in records[0] if key != "offsets"}
    joined["offsets"] = np.concatenate(offsets).astype(np.int32)
    return joined


def _explained_variance(predicted, target):
    var = target.var()
    return float(1.0 - (target - predicted).var() / var) if var > 0 else float("nan")
