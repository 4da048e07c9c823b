"""Config files: every value goes through its flag's own type, as on the command line; bad values are refused naming
the key with a short quote; YAML aliases are refused before they expand."""

import argparse
import json
import sys
import time
from pathlib import Path

import pytest

from ddpm_hf.training import load_config_file, number_in_range, parse_args_with_config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "train_scripts"))
import train_2d  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=str, default=None)
    parser.add_argument("--overwrite_output_dir", action="store_true")
    parser.add_argument("--no_flip", dest="flip", action="store_false")
    parser.add_argument("--use_ema", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--data_on_device", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--max_train_steps", type=int, default=None)
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--adam_beta1", type=number_in_range(float, 0, 1, exclusive_maximum=True), default=0.9)
    parser.add_argument("--hidden_dims", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--crop", type=int, nargs=2, default=None)
    parser.add_argument("--beta_schedule", type=str, default="linear", choices=["linear", "quad", "cosine"])
    parser.add_argument("--num_train_timesteps", "--ddpm_num_steps", type=int, default=1000)
    parser.add_argument("--hub_model_id", type=str, default=None)
    return parser


def parse(tmp_path, text, suffix=".yaml", argv=()):
    path = tmp_path / f"preset{suffix}"
    path.write_text(text)
    return parse_args_with_config(build_parser(), ["--config", str(path), *argv])


@pytest.mark.parametrize(
    "word, expected",
    [("true", True), ("'yes'", True), ("'1'", True), ("1", True), ("YES", True), ("on", True), ("True", True),
     ("false", False), ("'no'", False), ("'0'", False), ("0", False), ("No", False), ("off", False)],
)  # fmt: skip
def test_switches_take_boolean_words_as_booleans(tmp_path, word, expected):
    args = parse(tmp_path, f"overwrite_output_dir: {word}\nflip: {word}\nuse_ema: {word}\ndata_on_device: {word}\n")
    assert args.overwrite_output_dir is expected and args.flip is expected
    assert args.use_ema is expected and args.data_on_device is expected


@pytest.mark.parametrize("value", ["maybe", "'2'", "2", "1.0", "[true]", "''", "null"])
def test_a_switch_refuses_anything_else(tmp_path, value):
    with pytest.raises(ValueError, match=r"overwrite_output_dir: .* is not a boolean; use true/false"):
        parse(tmp_path, f"overwrite_output_dir: {value}\n")


def test_null_is_the_default_only_where_the_default_is_none(tmp_path):
    args = parse(tmp_path, "data_on_device: null\nmax_train_steps: null\n")
    assert args.data_on_device is None and args.max_train_steps is None
    with pytest.raises(ValueError, match=r"train_batch_size: null is not allowed"):
        parse(tmp_path, "train_batch_size: null\n")


def test_a_quoted_no_no_longer_turns_the_switch_on_and_deletes_a_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"overwrite_output_dir": "no", "use_ema": "false", "max_train_steps": 2}))
    with pytest.raises(ValueError, match="already holds files"):
        train_2d.parse_args(["--config", str(preset), "--output_dir", str(folder)])
    assert (folder / "notes.txt").read_text() == "keep me"
    args = train_2d.parse_args(["--config", str(preset), "--output_dir", str(tmp_path / "run")])
    assert args.overwrite_output_dir is False and args.use_ema is False and args.max_train_steps == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_train_steps: 2.5", r"max_train_steps: 2\.5 is not an integer"),
        ("max_train_steps: '2.5'", r"max_train_steps: '2\.5' is not an integer"),
        ("max_train_steps: 3.0", r"max_train_steps: 3\.0 is not an integer"),
        ("max_train_steps: true", r"max_train_steps: True is a boolean, and this flag takes a value"),
        ("train_batch_size: [4, 8]", r"train_batch_size: \[4, 8\] \(a list\) is not a single value"),
        ("train_batch_size: {a: 1}", r"train_batch_size: \{'a': 1\} \(a dict\) is not a single value"),
        ("learning_rate: fast", r"learning_rate: 'fast' is not a number"),
        ("adam_beta1: 1.5", r"adam_beta1: 1\.5: must be a number in \[0, 1\), got 1\.5"),
        ("beta_schedule: sigmoid", r"beta_schedule: 'sigmoid' is not one of \['linear', 'quad', 'cosine'\]"),
        ("hidden_dims: [64, wide]", r"hidden_dims\[1\]: 'wide' is not an integer"),
        ("hidden_dims: []", r"hidden_dims: give at least one value"),
        ("crop: [1, 2, 3]", r"crop: give exactly 2 values, got 3"),
        ("hub_model_id: no", r"hub_model_id: False is a boolean, and this flag takes a value; quote a word"),
        ("hub_model_id: 2024-01-01", r"hub_model_id: datetime.date\(2024, 1, 1\) \(a date\) is not a single value"),
    ],
)
def test_each_value_goes_through_its_flags_type(tmp_path, text, message):
    with pytest.raises(ValueError, match=message) as error:
        parse(tmp_path, text + "\n")
    assert "preset.yaml" in str(error.value)


def test_good_values_come_out_typed_as_on_the_command_line(tmp_path):
    args = parse(
        tmp_path,
        "max_train_steps: '12'\nlearning_rate: 1e-4\nadam_beta1: 0\nhidden_dims: 64\ncrop: [3, '4']\n"
        "beta_schedule: quad\nhub_model_id: '2024'\n",
    )
    assert args.max_train_steps == 12 and args.learning_rate == 1e-4 and args.adam_beta1 == 0.0
    assert args.hidden_dims == [64] and args.crop == [3, 4] and args.beta_schedule == "quad"
    assert args.hub_model_id == "2024"
    assert parse(tmp_path, "max_train_steps: 5\n", argv=["--max_train_steps", "7"]).max_train_steps == 7


@pytest.mark.parametrize("key", ["hidden_dims", "train_batch_size"])
def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path, key):
    # nine levels of nine aliases each under one key: 9**9 (387 million) strings once expanded
    lines = [f"{key}:", "  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, 9)]
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"YAML aliases are not allowed in config files \(found \*a0 at 3:") as error:
        parse(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5  # expanded, it would take minutes and gigabytes
    assert len(str(error.value)) < 300


def test_a_huge_value_is_quoted_by_a_short_prefix(tmp_path):
    with pytest.raises(ValueError, match=r"learning_rate: 'xxxx") as error:
        parse(tmp_path, "learning_rate: " + "x" * 1_000_000 + "\n")
    assert len(str(error.value)) < 300
    with pytest.raises(ValueError, match="train_batch_size") as error:
        parse(tmp_path, "train_batch_size: " + "[" * 50 + "1" + "]" * 50 + "\n")
    assert len(str(error.value)) < 300


@pytest.mark.parametrize(
    "text, suffix",
    [("use_ema: true\nuse_ema: false\n", ".yaml"), ('{"use_ema": true, "use_ema": false}', ".json"),
     ("use_ema: true\nuse-ema: false\n", ".yaml")],
)  # fmt: skip
def test_a_key_given_twice_is_refused(tmp_path, text, suffix):
    with pytest.raises(ValueError, match="given twice"):
        parse(tmp_path, text, suffix=suffix)


def test_unknown_and_non_string_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown keys \['learning_rat'\]"):
        parse(tmp_path, "learning_rat: 1\n")
    with pytest.raises(ValueError, match=r"keys must be flag names, got \[1\]"):
        parse(tmp_path, "1: 2\n")


def test_every_lab_preset_still_loads(tmp_path):
    import train_image

    for preset in sorted((REPO / "train_scripts" / "configs").glob("*.yaml")):
        parser = train_image.build_parser() if "swiss" not in preset.name else None
        if parser is None:
            assert train_2d.parse_args(["--config", str(preset), "--output_dir", str(tmp_path / "o")])
        else:
            assert load_config_file(str(preset), parser)


def test_an_alias_is_a_key_of_its_flag_and_a_negated_switch_is_not(tmp_path):
    assert parse(tmp_path, "ddpm_num_steps: 40\n").num_train_timesteps == 40
    with pytest.raises(ValueError, match=r"num_train_timesteps is given twice \(as 'num_train_timesteps' and another"):
        parse(tmp_path, "ddpm_num_steps: 40\nnum_train_timesteps: 30\n")
    with pytest.raises(ValueError, match=r"Unknown keys \['no_use_ema'\]"):
        parse(tmp_path, "no_use_ema: true\n")
