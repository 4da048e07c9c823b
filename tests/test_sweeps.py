"""The grid of a sweep: specs, cells and their folder names, the check against a script's parser, and the state of a
cell's run folder."""

import argparse
import os

import pytest

from ddpm_hf.sweeps import (
    MAX_NAME_LENGTH,
    cell_name,
    cell_names,
    check_values_with_parser,
    check_with_script,
    evaluation_is_current,
    flags_set_by,
    grid_cells,
    grid_layout,
    grid_tokens,
    load_script,
    parse_grid,
    parse_grid_spec,
    run_state,
    script_parser,
)
from ddpm_hf.training.flag_groups import FlagParser


def make_parser():
    parser = FlagParser()
    parser.add_argument("--output_dir")
    parser.add_argument("--beta_schedule", "--ddpm_beta_schedule", choices=("linear", "cosine"), default="linear")
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--hidden_dims", type=int, nargs="+", default=[8])
    parser.add_argument("--use_ema", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--random_flip", action="store_true")
    parser.add_argument("--verbose", action="count", default=0)
    return parser


def test_a_spec_is_a_flag_and_its_values_in_order():
    assert parse_grid_spec("beta_schedule=linear,quad,cosine") == ("beta_schedule", ["linear", "quad", "cosine"])
    assert parse_grid_spec("--seed= 0, 1") == ("seed", ["0", "1"])
    assert parse_grid_spec("hidden_dims=64 64,128") == ("hidden_dims", ["64 64", "128"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("beta_schedule", "write FLAG=VALUE1,VALUE2"),
        ("=linear", "write FLAG=VALUE1,VALUE2"),
        ("beta schedule=linear", "write FLAG=VALUE1,VALUE2"),
        ("prediction_type=", "no values for prediction_type"),
        ("prediction_type=  ", "no values for prediction_type"),
        ("prediction_type=x0,", "an empty value in 'x0,'"),
        ("prediction_type=x0,mean,x0", r"\['x0'\] given more than once"),
    ],
)
def test_a_bad_spec_is_refused_naming_it(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_grid_spec(spec)


def test_the_grid_keeps_the_order_of_the_specs_and_refuses_a_flag_given_twice():
    grid = parse_grid(["b=1,2", "a=x"])
    assert list(grid) == ["b", "a"] and grid["b"] == ["1", "2"]
    with pytest.raises(ValueError, match="--grid beta-schedule is given twice"):
        parse_grid(["beta_schedule=linear", "beta-schedule=cosine"])
    with pytest.raises(ValueError, match="Give at least one --grid"):
        parse_grid([])


def test_cells_run_the_first_flag_slowest_and_sit_in_its_rows():
    grid = {"a": ["1", "2"], "b": ["x", "y", "z"]}
    cells = grid_cells(grid)
    assert cells[:4] == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "1", "b": "z"}, {"a": "2", "b": "x"}]
    rows, columns = grid_layout(grid)
    assert rows == ["a=1", "a=2"] and columns == ["b=x", "b=y", "b=z"]
    assert grid_layout({"a": ["1", "2"]}) == ([""], ["a=1", "a=2"])  # one flag: one row
    rows, columns = grid_layout({"a": ["1"], "b": ["x", "y"], "c": ["p", "q"]})
    assert rows == ["a=1"] and columns == ["b=x, c=p", "b=x, c=q", "b=y, c=p", "b=y, c=q"]


def test_cell_names_are_readable_safe_and_distinct():
    assert cell_name({"beta_schedule": "linear", "prediction_type": "x0"}) == "beta_schedule=linear,prediction_type=x0"
    assert cell_name({"dataset_name": "data/my set:1"}) == "dataset_name=data_my_set_1"
    assert cell_name({"a": "/x"}) == "a=_x"
    long_name = cell_name({"a": "v" * 500})
    assert len(long_name) == MAX_NAME_LENGTH and long_name != cell_name({"a": "v" * 499})
    with pytest.raises(ValueError, match="would share the folder 'x=a_b'"):
        cell_names([{"x": "a/b"}, {"x": "a:b"}])
    with pytest.raises(ValueError, match="would share the folder"):
        cell_names([{"x": "Linear"}, {"x": "linear"}])  # one folder on a file system that ignores case


def test_grid_values_become_the_words_the_script_reads():
    grid = {"ddpm_beta_schedule": ["linear"], "hidden_dims": ["16 16", "32"], "use_ema": ["true", "no"]}
    tokens = grid_tokens({**grid, "random_flip": ["1", "false"]}, make_parser(), "train.py")
    assert tokens["ddpm_beta_schedule"] == {"linear": ["--ddpm_beta_schedule=linear"]}
    assert tokens["hidden_dims"] == {"16 16": ["--hidden_dims", "16", "16"], "32": ["--hidden_dims", "32"]}
    assert tokens["use_ema"] == {"true": ["--use_ema"], "no": ["--no-use_ema"]}
    assert tokens["random_flip"] == {"1": ["--random_flip"], "false": []}
    # without a parser, each value is one --flag=value word
    assert grid_tokens({"seed": ["0"]}, None, "train.py") == {"seed": {"0": ["--seed=0"]}}


@pytest.mark.parametrize(
    "grid, kwargs, message",
    [
        ({"beta_schedul": ["linear"]}, {}, "train.py has no flag --beta_schedul. Did you mean beta_schedule"),
        ({"output_dir": ["a"]}, {}, "the sweep sets --output_dir itself"),
        ({"beta_schedule": ["linear"], "ddpm_beta_schedule": ["cosine"]}, {}, "are the same flag of train.py"),
        ({"use_ema": ["maybe"]}, {}, "--use_ema of train.py is a switch; its grid values are true and false"),
        ({"no-use_ema": ["true"]}, {}, "sweep the switch as use_ema=true,false"),
        ({"verbose": ["1"]}, {}, "--verbose of train.py takes no value"),
        ({"learning_rate": ["1"]}, {"taken": {"learning_rate"}}, "also among the training flags"),
    ],
)
def test_a_grid_flag_the_script_does_not_take_is_refused_by_name(grid, kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid_tokens(grid, make_parser(), "train.py", **kwargs)


def test_each_value_is_checked_alone_by_the_parser():
    parser = make_parser()
    good = grid_tokens({"beta_schedule": ["linear", "cosine"], "learning_rate": ["1e-3"]}, parser, "train.py")
    check_values_with_parser(parser, good, "train.py")
    bad = grid_tokens({"beta_schedule": ["linear", "nope"]}, parser, "train.py")
    with pytest.raises(ValueError, match="--grid beta_schedule=nope: train.py refuses it: .*invalid choice: 'nope'"):
        check_values_with_parser(parser, bad, "train.py")
    bad = grid_tokens({"learning_rate": ["fast"]}, parser, "train.py")
    with pytest.raises(ValueError, match="--grid learning_rate=fast: .*invalid float value: 'fast'"):
        check_values_with_parser(parser, bad, "train.py")


def test_flags_set_by_names_what_the_words_set_aliases_included():
    parser = make_parser()
    assert flags_set_by(parser, ["--ddpm_beta_schedule", "cosine", "--no-use_ema", "--unknown", "1"]) == {
        "beta_schedule",
        "use_ema",
    }
    plain = argparse.ArgumentParser()
    plain.add_argument("--pipeline", required=True)
    plain.add_argument("--steps", type=int)
    assert flags_set_by(plain, ["--steps", "3"]) == {"steps"}  # required flags are not asked for
    assert plain._option_string_actions["--pipeline"].required
    with pytest.raises(ValueError, match="argument --steps: invalid int value: 'x'"):
        flags_set_by(plain, ["--steps", "x"])


def test_check_with_script_turns_what_the_script_refuses_into_a_value_error():
    plain = argparse.ArgumentParser()
    plain.add_argument("--steps", type=int, required=True)
    assert check_with_script(plain.parse_args, ["--steps", "3"], "cell a=1").steps == 3
    with pytest.raises(ValueError, match="cell a=1: .*the following arguments are required: --steps"):
        check_with_script(plain.parse_args, [], "cell a=1")

    def refuse(argv):
        raise ValueError("--seed -1 is below 0.")

    with pytest.raises(ValueError, match=r"cell a=1: --seed -1 is below 0."):
        check_with_script(refuse, [], "cell a=1")


def test_the_parser_of_a_script_is_its_build_parser_or_the_one_parse_args_builds(tmp_path):
    with_builder = tmp_path / "with_builder.py"
    with_builder.write_text(
        "import argparse\n\ndef build_parser():\n    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--alpha')\n    return parser\n"
    )
    assert "--alpha" in script_parser(load_script(str(with_builder)))._option_string_actions
    without = tmp_path / "without_builder.py"
    without.write_text(
        "import argparse\nfrom ddpm_hf.training import parse_args_with_config\n\n"
        "def parse_args(argv=None):\n    parser = argparse.ArgumentParser()\n    parser.add_argument('--beta')\n"
        "    args = parse_args_with_config(parser, argv)\n    raise RuntimeError('checks that must not run')\n"
    )
    module = load_script(str(without))
    assert "--beta" in script_parser(module)._option_string_actions
    assert module.parse_args_with_config.__name__ == "parse_args_with_config"  # put back
    with pytest.raises(ValueError, match="No training script at"):
        load_script(str(tmp_path / "missing.py"))


def touch(path, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))


def test_run_state_of_an_image_run(tmp_path):
    run = tmp_path / "run"
    assert run_state(str(run), "train_image.py") == "new"
    run.mkdir()
    assert run_state(str(run), "train_image.py") == "restart"  # nothing to continue from
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    touch(run / "metrics.json", 100)  # a save during training: no final figures
    assert run_state(str(run), "train_image.py") == "resume"
    touch(run / "denoising_grid.png", 200)  # the final figures written, killed before the final metrics.json
    assert run_state(str(run), "train_image.py") == "resume"
    touch(run / "metrics.json", 200)
    assert run_state(str(run), "train_image.py") == "finished"
    with pytest.raises(ValueError, match="Unknown training script 'train_3d.py'"):
        run_state(str(run), "train_3d.py")


def test_run_state_of_a_2d_run_and_evaluations(tmp_path):
    run = tmp_path / "run"
    assert run_state(str(run), "train_2d.py") == "new"
    run.mkdir()
    assert run_state(str(run), "train_2d.py") == "restart"
    touch(run / "metrics.json", 100)
    assert run_state(str(run), "train_2d.py") == "finished"
    evaluation = tmp_path / "eval"
    assert not evaluation_is_current(str(evaluation), str(run))
    touch(evaluation / "eval.json", 50)  # the evaluation of an earlier model
    assert not evaluation_is_current(str(evaluation), str(run))
    touch(evaluation / "eval.json", 150)
    assert evaluation_is_current(str(evaluation), str(run))
