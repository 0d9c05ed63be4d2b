"""Ray actors against local workers, and the costs that decide how --ray scales:
`python benchmarks/bench_ray.py`.

Throughput (interleaved over --repeats rounds, medians reported):
  local   fastpg train --workers 2
  ray     fastpg train --workers 2 --ray      (a local Ray instance started by the run)
each the steady state of metrics.csv: env steps between its first and last row over
the seconds between them (worker and Ray start-up excluded).

Costs, measured in this process on a local Ray instance with 2 CPUs, at --hidden units:
  broadcast     ray.put of (W1, W2) once per batch, and an actor's fetch + copy of them
  call          the round trip of an actor call that does nothing (Ray's per-episode overhead)
  episode       bytes of a sparse episode as sent back (pickle protocol 5), per episode and step
  gradient      the alternative: an actor sends a dense (dW1, dW2) per episode; the driver's
                ray.get + add of it, against the learner's observe() of a sparse episode,
                and the actor's extra time (backward, and a ray.put of the 10 MB it would return)
  learner       observe 10 episodes + RMSProp (one update of the seed's batch)
Episodes are played by the initial (random) policy, so they are short (~1,000 steps);
per-step figures carry over to the longer episodes of a trained policy.
"""
import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastpg
from fastpg import metrics, ray_cluster, ray_pool
from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.policy import PolicySpec
from fastpg.reinforce import Reinforce
from fastpg.rollout import PlayerSettings
from fastpg.train import RunState


def child_env():
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


def train_rate(env_id, n_steps, workers, hidden, extra=()):
    """Steady-state env steps/s of one `fastpg train` run (from a scratch directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "fastpg", "train", "--algo", "reinforce", "--run-dir", run_dir,
               "--env", env_id, "--max-steps", str(n_steps), "--workers", str(workers), "--hidden", str(hidden),
               "--batch-size", "10", *extra]  # the seed's batch, as in the README's tables; 2 would idle cores
        subprocess.run(cmd, check=True, cwd=tmp, env=child_env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        m = metrics.read(os.path.join(run_dir, "metrics.csv"))
    steps = m["env_steps"][-1] - m["env_steps"][0]
    return steps / (m["seconds"][-1] - m["seconds"][0])


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class GradientActor(ray_pool.EpisodeActor):
    """The alternative design: play an episode and send back its dense gradient."""

    def play_gradient(self, weights, index, gamma=0.99):
        """(dW1, dW2, seconds the actor spent on the backward and on storing the 10 MB result)."""
        import ray

        from fastpg.reference import standardize

        episode = self.play(weights, index)
        start = time.perf_counter()
        backend = get_backend("cython")
        W1, W2 = self.params["W1"], self.params["W2"]
        dW1, dW2 = np.zeros_like(W1, order="F"), np.zeros_like(W2)
        advantages = standardize(backend.discount_rewards(episode["rewards"], gamma))
        backend.sparse_backward(W1, W2, episode["indices"], episode["signs"], episode["offsets"],
                                episode["dlogp"] * advantages, dW1, dW2)
        middle = time.perf_counter()
        ray.put((dW1, dW2))  # what returning them costs: serialising 10 MB into the object store
        return dW1, dW2, (middle - start, time.perf_counter() - middle)

    def noop(self):
        return None


def costs(env_id, hidden, n_episodes, repeats):
    import ray

    ray_cluster.init_ray(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        spec = PolicySpec(hidden)
        params = spec.initial_parameters(0)
        W1, W2 = params["W1"], params["W2"]
        actor = ray.remote(num_cpus=1)(GradientActor).remote(PlayerSettings(spec, env_id))
        ray.get(actor.noop.remote())
        out = {}

        # Broadcast: the driver's put, and an actor's fetch + copy of a new ref (minus a bare call).
        out["weights_mb"] = (W1.nbytes + W2.nbytes) / 1e6
        out["put_ms"] = 1e3 * median_seconds(lambda: ray.put(params), repeats)
        out["call_ms"] = 1e3 * median_seconds(lambda: ray.get(actor.noop.remote()), repeats)
        refs = [[ray.put(params)] for _ in range(repeats)]
        fetch = []
        for ref in refs:
            start = time.perf_counter()
            ray.get(actor.load_params.remote(ref))
            fetch.append(time.perf_counter() - start)
        out["actor_fetch_ms"] = 1e3 * statistics.median(fetch) - out["call_ms"]
        del refs

        # Episodes: bytes sent back, and the driver's cost of receiving one.
        weights = [ray.put(params)]
        episodes, receive = [], []
        for index in range(n_episodes):
            ref = actor.play.remote(weights, index)
            ray.wait([ref])
            start = time.perf_counter()
            episodes.append(ray.get(ref))
            receive.append(time.perf_counter() - start)
        steps = np.array([len(e["rewards"]) for e in episodes])
        sizes = np.array([len(pickle.dumps(e, protocol=5)) for e in episodes])
        out["episode_steps_mean"] = float(steps.mean())
        out["episode_bytes_mean"] = float(sizes.mean())
        out["episode_bytes_per_step"] = float(sizes.sum() / steps.sum())
        out["episode_receive_ms"] = 1e3 * statistics.median(receive)

        # The learner on those episodes: accumulate each, RMSProp once per 10.
        config = Config(algo="reinforce", hidden=hidden, batch_size=10, learning_rate=1e-4)
        learner = Reinforce(config, spec, {name: value.copy(order="K") for name, value in params.items()},
                            Reinforce.initial_state(spec), get_backend("cython"))
        per_episode = []
        for episode in episodes:
            start = time.perf_counter()
            learner.observe(episode)
            per_episode.append(time.perf_counter() - start)
        out["accumulate_ms_per_episode"] = 1e3 * statistics.median(per_episode)
        out["accumulate_us_per_step"] = 1e6 * sum(per_episode) / steps.sum()
        out["rmsprop_ms"] = 1e3 * median_seconds(lambda: learner.update(RunState()), repeats)
        out["update_ms_per_10_episodes"] = 10 * out["accumulate_ms_per_episode"] + out["rmsprop_ms"]

        # The alternative: dense per-episode gradients (the driver's get + add of 10 MB each).
        grad_W1, grad_W2 = np.zeros_like(W1, order="F"), np.zeros_like(W2)
        gradient_receive, backward, store = [], [], []
        for index in range(min(n_episodes, 5)):
            ref = actor.play_gradient.remote(weights, index)
            ray.wait([ref])
            start = time.perf_counter()
            dW1, dW2, (backward_s, store_s) = ray.get(ref)
            grad_W1 += dW1
            grad_W2 += dW2
            gradient_receive.append(time.perf_counter() - start)
            backward.append(backward_s)
            store.append(store_s)
            del dW1, dW2
        out["gradient_bytes"] = W1.nbytes + W2.nbytes
        out["gradient_receive_add_ms"] = 1e3 * statistics.median(gradient_receive)
        out["gradient_actor_backward_ms"] = 1e3 * statistics.median(backward)
        out["gradient_actor_store_ms"] = 1e3 * statistics.median(store)
        ray.kill(actor)
        return out
    finally:
        ray.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20000, help="env steps per throughput measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--episodes", type=int, default=10, help="episodes played for the cost measurements")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()

    rates = {"local": [], "ray": []}
    for _ in range(args.repeats):
        rates["local"].append(train_rate(args.env, args.steps, 2, args.hidden))
        rates["ray"].append(train_rate(args.env, args.steps, 2, args.hidden, extra=("--ray",)))
    med = {k: statistics.median(v) for k, v in rates.items()}
    c = costs(args.env, args.hidden, args.episodes, repeats=20)

    import ray

    print(f"fastpg {fastpg.__version__}, ray {ray.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.env}, hidden {args.hidden}")
    print(f"throughput (median of {args.repeats}, {args.steps:,} steps each):")
    print(f"  local --workers 2        {med['local']:8,.0f} steps/s   {[round(r) for r in rates['local']]}")
    print(f"  --ray, 2 actors          {med['ray']:8,.0f} steps/s   {[round(r) for r in rates['ray']]}")
    print(f"  ray / local              {med['ray'] / med['local']:8.2f}        (target >= 0.80)")
    print("costs:")
    print(f"  weights broadcast        {c['weights_mb']:.1f} MB: ray.put {c['put_ms']:.1f} ms, "
          f"actor fetch + copy {c['actor_fetch_ms']:.1f} ms (once per batch)")
    print(f"  actor call round trip    {c['call_ms']:.2f} ms (once per episode)")
    print(f"  sparse episode           {c['episode_bytes_mean'] / 1e3:.0f} kB for {c['episode_steps_mean']:.0f} "
          f"steps = {c['episode_bytes_per_step']:.0f} B/step; driver receives it in "
          f"{c['episode_receive_ms']:.2f} ms")
    print(f"  learner accumulate       {c['accumulate_ms_per_episode']:.2f} ms/episode "
          f"({c['accumulate_us_per_step']:.2f} us/step)")
    print(f"  learner RMSProp          {c['rmsprop_ms']:.1f} ms; one update (10 episodes + RMSProp) "
          f"{c['update_ms_per_10_episodes']:.1f} ms")
    print(f"  dense gradient instead   {c['gradient_bytes'] / 1e6:.1f} MB/episode; driver get + add "
          f"{c['gradient_receive_add_ms']:.1f} ms/episode; the actor's extra: backward "
          f"{c['gradient_actor_backward_ms']:.1f} ms + storing {c['gradient_actor_store_ms']:.1f} ms per episode")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rates": rates, "medians": med, "costs": c, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
