"""The `fastpg` command line itself: the subprocess the tests run imports the package under test,
the help texts (built from Config and PRESETS), and the installed console script."""
import dataclasses
import os
import subprocess
import sys

import pytest

from helpers import cli_env, run_fastpg

COMMANDS = ("train", "eval", "video", "plot", "weights")
TRAIN_OPTIONS = ("--run-dir", "--resume", "--episodes", "--max-steps", "--max-minutes", "--preset", "--seed",
                 "--backend", "--workers", "--checkpoint-every", "--env", "--algo", "--hidden", "--batch-size",
                 "--learning-rate", "--gamma", "--decay-rate")


def test_cli_runs_the_package_under_test(tmp_path):
    import fastpg

    result = subprocess.run([sys.executable, "-c", "import fastpg; print(fastpg.__file__)"], cwd=tmp_path,
                            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert os.path.realpath(result.stdout.strip()) == os.path.realpath(fastpg.__file__)


def train_actions():
    """The train parser's actions by option name."""
    from fastpg.cli import build_parser

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    return {option: action for action in train_parser._actions for option in action.option_strings}


def test_every_setting_is_an_option_whose_help_comes_from_config_and_presets():
    from fastpg.algorithm import ALGORITHMS
    from fastpg.config import ALGORITHM_DEFAULTS, DEFAULTS, PRESETS

    actions = train_actions()
    assert sorted(actions["--preset"].choices) == sorted(PRESETS)
    for field in dataclasses.fields(DEFAULTS):
        action = actions["--" + field.name.replace("_", "-")]
        assert action.default is None  # unset: the default, or the checkpoint's value on --resume
        assert action.type is field.type
        assert action.help.startswith(field.metadata["help"])
        per_algorithm = {algo: values[field.name] for algo, values in ALGORITHM_DEFAULTS.items() if field.name in values}
        if per_algorithm:  # each algorithm's own default, named
            assert field.default is None
            for algo, value in per_algorithm.items():
                assert f"{value} with --algo {algo}" in action.help, field.name
        else:
            assert f"(default {field.default}" in action.help
        for preset, settings in PRESETS.items():
            differs = field.name in settings and settings[field.name] != field.default
            assert (f"--preset {preset}: {settings.get(field.name)}" in action.help) == differs, field.name
    assert actions["--algo"].choices == sorted(ALGORITHMS) == ["ppo", "reinforce"]


def test_help_describes_every_option(tmp_path):
    top = run_fastpg("--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    for command in COMMANDS:
        assert command in top.stdout, command
    result = run_fastpg("train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option in TRAIN_OPTIONS:
        assert option in text, option
    for default in ("200", "0.001", "0.0001", "0.99", "ALE/Pong-v5", "Pong-v0", "cython", "numpy"):
        assert default in text, default
    assert "(default: None)" not in text  # the unset options state their defaults in words


def test_console_script_help():
    """The installed `fastpg` script, when this interpreter has one (pip install . puts it there)."""
    script = os.path.join(os.path.dirname(sys.executable), "fastpg")
    if not os.path.exists(script):
        pytest.skip("no fastpg console script next to this interpreter (not installed)")
    result = subprocess.run([script, "train", "--help"], env=cli_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--episodes" in result.stdout


def test_main_help_in_process(capsys):
    from fastpg.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out, command
