"""The learning table: for each run, when its running reward first reached -10, 0, +10 and +15.

    python benchmarks/learning_table.py docs/runs/*/

Reads each run directory's metrics.csv, state.json (for its settings) and, when present,
eval.json (the output of `fastpg eval RUN --games 20 --json`). Prints a Markdown table.
"""
import argparse
import json
import os

from fastpg.metrics import read

THRESHOLDS = (-10.0, 0.0, 10.0, 15.0)


def metric_rows(run_dir):
    columns = read(os.path.join(run_dir, "metrics.csv"))
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def first_reaching(rows, threshold):
    """The first row whose running reward is at or above threshold, or None."""
    return next((row for row in rows if row["running_reward"] >= threshold), None)


def settings(state):
    config = state["config"]
    learning_rate = f"{config['learning_rate']:.0e}".replace("e-0", "e-")  # 1e-3, not 0.001
    if config.get("lr_decay_steps"):  # runs before fastpg 0.7 had a constant rate
        learning_rate += f" to 0 over {config['lr_decay_steps'] / 1e6:g} M steps"
    if config.get("ent_decay_steps"):  # added in 0.14
        entropy_decay = f" to 0 over {config['ent_decay_steps'] / 1e6:g} M steps"
    else:
        entropy_decay = ""
    if config.get("algo", "reinforce") == "reinforce":
        return f"reinforce, lr {learning_rate}, batch {config['batch_size']}, seed {config['seed']}"
    return (f"ppo, lr {learning_rate}, {config['lanes']} lanes x {config['segment_steps']}, {config['epochs']} epochs "
            f"x {config['minibatches']} minibatches, max-kl {config['max_kl']:g}, entropy {config['ent_coef']:g}"
            f"{entropy_decay}, "
            f"baseline {config.get('baseline') or 'value'}, lag {config.get('policy_lag', 0)}, "  # before 0.5: no lag
            f"{'sees the frame, ' if config.get('inputs') == 'difference+frame' else ''}"
            f"{'lazy Adam, ' if config.get('optimizer') == 'lazy-adam' else ''}"  # added in 0.15
            f"{'actions ' + config['actions'] + ', ' if config.get('actions') else ''}"  # None: the game's default then
            f"{'' if config.get('hidden', 200) == 200 else str(config['hidden']) + ' hidden, '}"
            f"{_unless_usual(config, 'gamma', 0.99, 'gamma')}{_unless_usual(config, 'lam', 0.95, 'lambda')}"
            f"{_unless_usual(config, 'clip', 0.2, 'clip')}seed {config['seed']}")


def _unless_usual(config, name, usual, label):
    """'label value, ' where the run changed a setting that nearly every run leaves at ``usual``; else ''."""
    value = config.get(name, usual)
    return "" if value == usual else f"{label} {value:g}, "


def describe(run_dir):
    rows = metric_rows(run_dir)
    with open(os.path.join(run_dir, "state.json")) as f:
        state = json.load(f)
    cells = [os.path.basename(os.path.normpath(run_dir)), settings(state)]
    for threshold in THRESHOLDS:
        row = first_reaching(rows, threshold)
        cells.append("not reached" if row is None else
                     f"{row['episode']:,.0f} / {row['env_steps'] / 1e6:.2f} M / {row['seconds'] / 60:.1f} min")
    last = rows[-1]
    cells.append(f"{last['running_reward']:+.1f} at {last['episode']:,.0f} / {last['env_steps'] / 1e6:.2f} M / "
                 f"{last['seconds'] / 60:.0f} min")
    eval_path = os.path.join(run_dir, "eval.json")
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            result = json.load(f)
        cells.append(f"{result['mean_score']:+.2f} ({result['wins']}/{result['games']} won)")
    else:
        cells.append("not run")
    return "| " + " | ".join(cells) + " |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    args = parser.parse_args()
    header = ["run", "settings", "to -10 (episodes / env steps / minutes)", "to 0", "to +10", "to +15", "end of run",
              "eval, 20 games"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run_dir in args.runs:
        print(describe(run_dir))


if __name__ == "__main__":
    main()
