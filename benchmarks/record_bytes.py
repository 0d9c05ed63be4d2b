"""Bytes a recorded step costs: `python benchmarks/record_bytes.py [RUN_DIR] [--inputs I] [--batches N]`.

Plays N batches (16 lanes x 128 steps of ALE/Pong-v5) one after the other
with a run's weights (RUN_DIR's checkpoint: its game play, its --inputs), or
with the initial weights of --inputs, and prints the mean bytes per env step
of what a segment's result carries to the learner: the record (sparse
entries, offsets, choices, log-probabilities and, for a network that sees
the frame, keyframe flags), rewards and done flags. For a frame-seeing
network it also prints the record's size with every row's frame listed, as
the learner's kernels read it (and as fastpg 0.12 sent it).
"""
import argparse

import numpy as np

from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.lanes import LanePlayer, LaneState, Segment
from fastpg.rollout import PlayerSettings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="a run directory whose weights play (default: initial weights)")
    parser.add_argument("--inputs", default="difference", help="without RUN_DIR: what the network sees")
    parser.add_argument("--batches", type=int, default=4, help="batches of 16 x 128 steps to play (default 4)")
    args = parser.parse_args()
    if args.run_dir:
        from fastpg.saved_run import load_run

        params, spec, state, config = load_run(args.run_dir)  # laid out as the kernels want them
        env_id, seed = config.env, config.seed
    else:
        config = Config(algo="ppo", inputs=args.inputs)
        config.validate()
        spec, env_id, seed = config.policy(), config.env, config.seed
        params = spec.initial_parameters(seed)
    player = LanePlayer(PlayerSettings(spec, env_id, unit="segment"), params)
    expand = get_backend("cython").expand_frame_record
    lanes = [LaneState.start(seed, lane) for lane in range(16)]
    steps = sent = full = 0
    entries = []
    for batch in range(args.batches):
        for lane, lane_state in enumerate(lanes):
            result = player.play(Segment(lane, batch, 128, lane_state, True))
            lanes[lane] = result["state"]
            record = result["record"]
            steps += len(result["rewards"])
            size = sum(array.nbytes for array in record.values()) + result["rewards"].nbytes + result["dones"].nbytes
            sent += size
            entries.append(np.diff(record["offsets"]))
            if "keyframes" in record:
                sparse = (record["indices"], record["signs"], record["offsets"])
                full_sparse = expand(*sparse, record["keyframes"])
                full += (size - sum(array.nbytes for array in (*sparse, record["keyframes"]))
                         + sum(array.nbytes for array in full_sparse))
    print(f"{args.run_dir or 'initial weights'} ({spec.inputs}), {steps:,} env steps:")
    print(f"  a segment's result: {sent / steps:.1f} bytes per env step "
          f"(mean {np.mean(np.concatenate(entries)):.1f} sparse entries a row)")
    if full:
        print(f"  with every row's frame listed: {full / steps:.1f} bytes per env step")


if __name__ == "__main__":
    main()
