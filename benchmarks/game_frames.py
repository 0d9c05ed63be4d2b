"""How sparse each game's difference frames are, and what that costs the kernels.

    python benchmarks/game_frames.py [--steps 5000] [--repeats 3] [--json docs/runs/game_frames.json]

For each game of fastpg.games.KNOWN_GAMES (ALE/<Title>-v5), plays --steps
steps of random play: the actor-critic's own stochastic choices with its
initial weights (hidden 200, seed 0, the game's PPO default actions), on
palette screens with the compiled stepper, episodes restarted as they end.
Measured:

  nnz        non-zero pixels of each step's difference frame (``stepper.nnz``;
             an episode's first step, all zero, is left out): mean, median,
             p99, max.
  ppo        µs per ``ActorStepper.step`` call, and µs per emulator step
             (``game.step``) in the same loop: perf_counter around each call.
  reinforce  µs per ``PolicyStepper.step`` (REINFORCE's stepper: RGB screens,
             its two actions) on the same screens, read with ``game.rgb()``
             outside the timing; and µs per row of ``sparse_backward`` over
             its episodes.
  forward    µs per row of ``actor_critic_forward`` over the whole record.
  backward   µs per row of ``ppo_backward`` on 1,024-row minibatches of the
             record, with the trainer's clip 0.2, vf_coef 0.5, ent_coef 0.01
             (advantages and returns standard normal, logp_old from the
             forward's log-softmax).

The play is seeded, so every round plays the same steps; rounds go over all
games in turn (--repeats of them), and each timing is the median over rounds
(the kernels': over all their calls in all rounds).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from fastpg import kernels
from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.env import AtariGame
from fastpg.games import CROP_ROWS, KNOWN_GAMES, action_names
from fastpg.reference import log_softmax

HIDDEN, SEED, MINIBATCH = 200, 0, 1024
CLIP, VF_COEF, ENT_COEF = 0.2, 0.5, 0.01  # the trainer's defaults (fastpg.config.ALGORITHM_DEFAULTS)
KERNEL_CALLS = 5  # per kernel, game and round
REINFORCE_ACTIONS = {"ALE/Boxing-v5": "LEFTFIRE,RIGHTFIRE"}  # Boxing declares no pair


def play(env_id, n_steps, seed=SEED):
    """Random play of n_steps with both steppers.

    Returns nnz per step, {timing: seconds}, (ppo parameters, its record), (reinforce parameters, its episodes).
    """
    backend = get_backend("cython")
    spec = Config(env=env_id, algo="ppo", hidden=HIDDEN, seed=seed).policy()
    game = AtariGame(env_id, screen=spec.screen)
    params = spec.initial_parameters(seed)
    stepper = spec.stepper(backend, params, game)
    r_spec = Config(env=env_id, algo="reinforce", hidden=HIDDEN, seed=seed,
                    actions=REINFORCE_ACTIONS.get(env_id)).policy()
    r_params = r_spec.initial_parameters(seed)
    r_stepper = r_spec.stepper(backend, r_params, game)
    policy_seq, env_seq = np.random.SeedSequence(seed).spawn(2)
    draws = np.random.default_rng(policy_seq).random(n_steps).tolist()
    env_rng = np.random.default_rng(env_seq)

    nnz, episodes = [], []
    seconds = {"ppo": 0.0, "emulator": 0.0, "reinforce": 0.0}
    clock = time.perf_counter
    screen, first = game.reset(env_rng), True
    for u in draws:
        t0 = clock()
        action = stepper.step(screen, u)
        t1 = clock()
        if not first:
            nnz.append(stepper.nnz)
        rgb = game.rgb()
        t2 = clock()
        r_stepper.step(rgb, u)
        t3 = clock()
        screen, _, done = game.step(action)
        t4 = clock()
        seconds["ppo"] += t1 - t0
        seconds["reinforce"] += t3 - t2
        seconds["emulator"] += t4 - t3
        first = done
        if done:
            stepper.new_episode()
            episodes.append(r_stepper.finish())
            screen = game.reset(env_rng)
    episodes.append(r_stepper.finish())
    return np.array(nnz), seconds, (params, stepper.finish()), (r_params, [e for e in episodes if len(e["dlogp"])])


def time_call(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def kernel_seconds_per_row(ppo, reinforce, rng):
    """{kernel: [seconds per row of each call]} on one game's records."""
    params, record = ppo
    sparse = (record["indices"], record["signs"], record["offsets"])
    n_rows = len(record["offsets"]) - 1
    logits, values = np.zeros((n_rows, len(params["b_pi"]))), np.zeros(n_rows)
    out = {"forward": [], "backward": [], "reinforce_backward": []}
    for _ in range(KERNEL_CALLS):
        out["forward"].append(time_call(kernels.actor_critic_forward, params, *sparse, logits, values) / n_rows)
    m = min(MINIBATCH, n_rows)
    grads = {name: np.zeros_like(w, order="K") for name, w in params.items()}
    for _ in range(KERNEL_CALLS):
        rows = np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)
        choices = np.ascontiguousarray(record["choices"][rows])
        logp_old = np.ascontiguousarray(log_softmax(logits[rows])[np.arange(m), choices])
        args = (params, *sparse, rows, choices, logp_old, rng.standard_normal(m), rng.standard_normal(m),
                CLIP, VF_COEF, ENT_COEF, grads)
        out["backward"].append(time_call(kernels.ppo_backward, *args) / m)
    W1, W2 = reinforce[0]["W1"], reinforce[0]["W2"]
    dW1, dW2 = np.zeros_like(W1, order="F"), np.zeros_like(W2)
    episodes = reinforce[1]
    weighted = [e["dlogp"] * rng.standard_normal(len(e["dlogp"])) for e in episodes]
    for _ in range(KERNEL_CALLS):
        total = sum(time_call(kernels.sparse_backward, W1, W2, e["indices"], e["signs"], e["offsets"], w, dW1, dW2)
                    for e, w in zip(episodes, weighted))
        out["reinforce_backward"].append(total / sum(len(w) for w in weighted))
    return out


def machine():
    import ale_py

    models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    return {"cpu": models[0] if models else platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "ale_py": ale_py.__version__, "load_average": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="steps of random play per game")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all games; timings are their medians")
    parser.add_argument("--json", help="also write every number here")
    args = parser.parse_args()

    games = {f"ALE/{profile.title}-v5": profile for profile in KNOWN_GAMES.values()}
    info = machine()
    timings = {env_id: {} for env_id in games}  # name -> µs per step or row, one per round or kernel call
    nnz = {}
    kernel_rng = np.random.default_rng(SEED)
    for _ in range(args.repeats):
        for env_id in games:
            nnz[env_id], seconds, ppo, reinforce = play(env_id, args.steps)  # the same nnz every round
            for key, value in seconds.items():
                timings[env_id].setdefault(key, []).append(value / args.steps * 1e6)
            for key, values in kernel_seconds_per_row(ppo, reinforce, kernel_rng).items():
                timings[env_id].setdefault(key, []).extend(v * 1e6 for v in values)
    info["load_average_end"] = os.getloadavg()

    rows = []
    for env_id, profile in games.items():
        n, us = nnz[env_id], {key: statistics.median(values) for key, values in timings[env_id].items()}
        names = action_names(env_id)
        rows.append({
            "env": env_id, "first_row": profile.frame.first_row, "background_reds": list(profile.frame.background),
            "ppo_actions": [names[i] for i in Config(env=env_id).policy().actions],
            "reinforce_actions": [names[i] for i in Config(env=env_id, algo="reinforce",
                                                           actions=REINFORCE_ACTIONS.get(env_id)).policy().actions],
            "difference_frames": len(n),
            "nnz": {"mean": float(n.mean()), "median": float(np.median(n)), "p99": float(np.percentile(n, 99)),
                    "max": int(n.max()), "zero_fraction": float((n == 0).mean())},
            "us_median": us, "ppo_stepper_over_emulator": us["ppo"] / us["emulator"], "us_all": timings[env_id],
        })

    print(f"{args.steps} steps of random play per game (hidden {HIDDEN}, seed {SEED}); medians of {args.repeats} "
          f"interleaved rounds; {info['cpus']} CPUs, {info['cpu']}, load {info['load_average'][0]:.1f}\n")
    print("| game | background reds & rows | A | nnz mean / median / p99 / max | ppo stepper µs/step | "
          "emulator µs/step | forward µs/row | backward µs/row | reinforce stepper µs/step |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        n, us = row["nnz"], row["us_median"]
        last = row["first_row"] + CROP_ROWS - 1
        print(f"| {row['env']} | {', '.join(map(str, row['background_reds']))}; rows {row['first_row']}-{last} "
              f"| {len(row['ppo_actions'])} | {n['mean']:.1f} / {n['median']:.0f} / {n['p99']:.0f} / {n['max']} "
              f"| {us['ppo']:.1f} | {us['emulator']:.0f} | {us['forward']:.2f} | {us['backward']:.2f} "
              f"| {us['reinforce']:.1f} |")
    if args.json:
        settings = {"steps": args.steps, "repeats": args.repeats, "hidden": HIDDEN, "seed": SEED,
                    "minibatch": MINIBATCH, "clip": CLIP, "vf_coef": VF_COEF, "ent_coef": ENT_COEF,
                    "kernel_calls_per_round": KERNEL_CALLS}
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(["python", *sys.argv]), "date": datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec="seconds"), "machine": info, "settings": settings,
                "games": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
