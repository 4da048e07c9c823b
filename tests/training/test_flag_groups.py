"""The shared flag groups: values checked when argparse reads them (command line and config files alike), refusals as
ValueErrors naming the flag, value and what is allowed, and the components built from them."""

import math

import pytest
import torch
from diffusers.optimization import SchedulerType

from ddpm_hf import ExtendedDDPMScheduler
from ddpm_hf.training import (
    LR_SCHEDULERS,
    FlagParser,
    add_diffusion_flags,
    add_ema_flags,
    add_image_data_flags,
    add_optimizer_flags,
    add_run_flags,
    check_diffusion_flags,
    check_image_data_flags,
    check_run_flags,
    make_ema,
    make_lr_scheduler,
    make_noise_scheduler,
    make_optimizer,
    number_in_range,
    parse_args_with_config,
)


def parser():
    parser = FlagParser()
    add_run_flags(parser)
    add_image_data_flags(parser)
    add_diffusion_flags(parser)
    add_optimizer_flags(parser, learning_rate=1e-3)
    add_ema_flags(parser, ema_max_decay=0.999, ema_power=2 / 3)
    return parser


def test_defaults_are_diffusers_and_a_script_may_change_them():
    args = parser().parse_args([])
    assert (args.num_train_timesteps, args.beta_schedule, args.prediction_type, args.num_inference_steps) == (
        1000, "linear", "epsilon", None,
    )  # fmt: skip
    assert (args.learning_rate, args.lr_scheduler, args.lr_warmup_steps) == (1e-3, "cosine", 500)
    assert (args.adam_beta1, args.adam_beta2, args.adam_weight_decay, args.adam_epsilon) == (0.95, 0.999, 1e-6, 1e-8)
    assert (args.use_ema, args.ema_max_decay, args.ema_power, args.ema_inv_gamma) == (True, 0.999, 2 / 3, 1.0)
    pretrained = FlagParser()
    add_diffusion_flags(pretrained, from_pretrained=True)
    assert pretrained.parse_args([]).num_train_timesteps is None  # filled in from a pretrained scheduler


def test_lr_schedules_are_diffusers_own_that_the_flags_can_build():
    assert set(LR_SCHEDULERS) == {kind.value for kind in SchedulerType} - {"piecewise_constant"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--beta_schedule", "quad2"], r"argument --beta_schedule/--ddpm_beta_schedule: invalid choice: 'quad2'"),
        (["--adam_beta2", "1"], r"argument --adam_beta2: must be a number in \[0, 1\), got 1.0"),
        (["--beta_end", "0"], r"argument --beta_end: must be a number in \(0, 1\), got 0.0"),
        (["--lr_warmup_steps", "-1"], r"argument --lr_warmup_steps: must be an integer in \[0, inf\), got -1"),
        (["--seed", "4294967296"], r"argument --seed: must be an integer in \[0, 4294967295\], got 4294967296"),
        (["--learning_rate", "fast"], r"argument --learning_rate: 'fast' is not a number"),
        (["--resize_mode", "pad"], r"argument --resize_mode: invalid choice: 'pad'"),
        (["--no_such_flag"], r"unrecognized arguments: --no_such_flag"),
    ],
)
def test_bad_values_are_refused_when_read_as_value_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        parser().parse_args(argv)


def test_config_files_go_through_the_same_types(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text("adam_beta1: 1.5\n")
    with pytest.raises(ValueError, match=r"adam_beta1: 1.5: must be a number in \[0, 1\), got 1.5"):
        parse_args_with_config(parser(), ["--config", str(path)])
    path.write_text("ddpm_beta_schedule: cosine\nlr_scheduler: polynomial\n")
    args = parse_args_with_config(parser(), ["--config", str(path)])
    assert (args.beta_schedule, args.lr_scheduler) == ("cosine", "polynomial")


def test_checks_of_flags_that_depend_on_each_other():
    with pytest.raises(ValueError, match=r"--output_dir is required"):
        check_run_flags(parser().parse_args([]))
    for argv in ([], ["--dataset_name", "digits", "--train_data_dir", "x"]):
        with pytest.raises(ValueError, match="Give exactly one of --dataset_name and --train_data_dir"):
            check_image_data_flags(parser().parse_args(argv))
    args = parser().parse_args(["--ddpm_num_steps", "40", "--ddpm_num_inference_steps", "41"])
    with pytest.raises(ValueError, match=r"--num_inference_steps must be in 1..40 \(--num_train_timesteps\), got 41"):
        check_diffusion_flags(args)


def test_integer_bounds_are_written_in_full():
    with pytest.raises(Exception, match=r"must be an integer in \[1, 1000000\], got 0"):
        number_in_range(int, 1, 1_000_000)("0")


def test_components_follow_the_flags():
    args = parser().parse_args(
        ["--ddpm_num_steps", "50", "--beta_schedule", "quad", "--prediction_type", "x0", "--adam_beta1", "0.8",
         "--adam_weight_decay", "0.01", "--lr_scheduler", "linear", "--lr_warmup_steps", "2", "--ema_inv_gamma", "2"]
    )  # fmt: skip
    scheduler = make_noise_scheduler(args, clip_sample=False)
    assert isinstance(scheduler, ExtendedDDPMScheduler) and scheduler.config.num_train_timesteps == 50
    assert (scheduler.config.beta_schedule, scheduler.config.prediction_type) == ("scaled_linear", "sample")
    assert scheduler.config.clip_sample is False
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(args, model.parameters())
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["eps"]) == (1e-3, (0.8, 0.999), 0.01, 1e-8)
    lr_scheduler = make_lr_scheduler(args, optimizer, num_training_steps=4)
    rates = []
    for _ in range(4):
        rates.append(lr_scheduler.get_last_lr()[0])
        optimizer.step()
        lr_scheduler.step()
    assert rates == pytest.approx([0.0, 5e-4, 1e-3, 5e-4])  # 2 warm-up steps, then linear decay to 0 at step 4
    ema = make_ema(args, model.parameters(), "cpu")
    assert (ema.inv_gamma, ema.power, ema.decay, ema.use_ema_warmup) == (2.0, 2 / 3, 0.999, True)
    for _ in range(2):  # diffusers counts the warm-up from the step after the first
        ema.step(model.parameters())
    assert math.isclose(ema.cur_decay_value, 1 - (1 + 1 / 2.0) ** (-2 / 3))
    assert make_ema(parser().parse_args(["--no-use_ema"]), model.parameters(), "cpu") is None
