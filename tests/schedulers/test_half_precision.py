"""ExtendedDDPMScheduler in float16 and bfloat16: every step finite, and no less exact than diffusers' DDPMScheduler.

A step in a half dtype is compared with the same step in float32 (inputs: the float32 inputs rounded to the dtype).
The yardstick is diffusers' own DDPMScheduler stepping an epsilon model in that dtype: its error comes from rounding
the inputs and the result, plus the coefficients it rounds to the dtype first. Ours computes the coefficients and the
update in float32 and rounds only the result, so its error must stay within that yardstick (1.5x, plus 1e-3 for
prediction types whose inputs carry other rounding, e.g. x0 recovered from a posterior mean).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from ddpm_hf import ExtendedDDPMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devices import TEST_DEVICE  # noqa: E402
from reference_targets import exact_model_output  # noqa: E402

T = 1000
TIMESTEPS = (0, 1, 5, 500)
HALF_DTYPES = (torch.float16, torch.bfloat16)
SCHEDULES = ("linear", "quad", "cosine")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "mean")


def alphas_cumprod64(schedule):
    """alpha_bar in float64 from the schedule's definition (written here, not read from the code under test)."""
    if schedule == "linear":
        betas = np.linspace(1e-4, 0.02, T)
    elif schedule == "quad":
        betas = np.linspace(1e-4**0.5, 0.02**0.5, T) ** 2
    else:
        steps = np.arange(T + 1) / T
        alpha_bar = np.cos((steps + 0.008) / 1.008 * np.pi / 2) ** 2
        betas = np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    return np.cumprod(1 - betas)


def perfect_inputs(schedule, prediction_type, t, seed=0):
    """x_t and the exact model output for clean data in [-1, 1], in float64."""
    rng = np.random.default_rng(seed + t)
    x0 = rng.uniform(-1, 1, (4, 3, 8, 8))
    noise = rng.standard_normal(x0.shape)
    alphas_cumprod = alphas_cumprod64(schedule)
    alpha_bar, alpha_bar_prev = alphas_cumprod[t], (alphas_cumprod[t - 1] if t > 0 else 1.0)
    xt = alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise
    output = exact_model_output(prediction_type, x0, xt, alpha_bar, alpha_bar_prev)
    return torch.from_numpy(xt), torch.from_numpy(output)


def step_error(scheduler, xt, output, t, dtype):
    """Max |step in dtype - step in float32|, both from the float32 inputs (rounded to dtype for the first)."""
    xt32, output32 = xt.float().to(TEST_DEVICE), output.float().to(TEST_DEVICE)
    results = {}
    for run_dtype in (torch.float32, dtype):
        step = scheduler.step(
            output32.to(run_dtype), t, xt32.to(run_dtype), generator=torch.Generator().manual_seed(t)
        )
        assert step.prev_sample.dtype == run_dtype and step.pred_original_sample.dtype == run_dtype
        results[run_dtype] = step
    half, full = results[dtype], results[torch.float32]
    assert torch.isfinite(half.prev_sample).all() and torch.isfinite(half.pred_original_sample).all()
    assert half.prev_sample.device.type == TEST_DEVICE.type
    return (half.prev_sample.float() - full.prev_sample).abs().max().item()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_half_precision_steps_are_finite_and_no_worse_than_diffusers(dtype, schedule, prediction_type):
    ours = ExtendedDDPMScheduler(beta_schedule=schedule, prediction_type=prediction_type)
    yardstick = DDPMScheduler(
        beta_schedule={"quad": "scaled_linear", "cosine": "squaredcos_cap_v2"}.get(schedule, schedule)
    )
    for t in TIMESTEPS:
        xt, epsilon = perfect_inputs(schedule, "epsilon", t)
        diffusers_error = step_error(yardstick, xt, epsilon, t, dtype)
        xt, output = perfect_inputs(schedule, prediction_type, t)
        our_error = step_error(ours, xt, output, t, dtype)
        assert our_error <= 1.5 * diffusers_error + 1e-3, (t, our_error, diffusers_error)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_mean_prediction_near_t0_was_the_nan_case(dtype):
    # alpha_bar_0 = 1 - 1e-4 rounds to 1 in float16 (and bfloat16): 1 - alpha_bar_0 became 0 and x0 0/0.
    assert torch.tensor(1 - 1e-4, dtype=dtype) == 1
    scheduler = ExtendedDDPMScheduler(prediction_type="mean")
    for t in (0, 1):
        xt, output = perfect_inputs("linear", "mean", t)
        output, xt = output.to(TEST_DEVICE, dtype), xt.to(TEST_DEVICE, dtype)
        step = scheduler.step(output, t, xt, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(step.prev_sample).all() and torch.isfinite(step.pred_original_sample).all()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_training_helpers_compute_in_float32(dtype, prediction_type):
    scheduler = ExtendedDDPMScheduler(prediction_type=prediction_type)
    rng = np.random.default_rng(1)
    x0 = torch.from_numpy(rng.uniform(-1, 1, (6, 2))).float()
    noise = torch.from_numpy(rng.standard_normal((6, 2))).float()
    x0, noise = x0.to(TEST_DEVICE), noise.to(TEST_DEVICE)
    timesteps = torch.tensor([0, 1, 5, 100, 500, 999], device=TEST_DEVICE)
    full = scheduler.get_training_target(x0, noise, timesteps)
    half = scheduler.get_training_target(x0.to(dtype), noise.to(dtype), timesteps)
    assert half.dtype == dtype
    # inputs and result each rounded once: a few units in the last place of values of size <= 4
    ulp = torch.finfo(dtype).eps
    torch.testing.assert_close(half.float(), full, rtol=0, atol=4 * 4 * ulp)
