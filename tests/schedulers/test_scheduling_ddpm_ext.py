"""ExtendedDDPMScheduler against independent float64 maths and against diffusers' DDPMScheduler."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from ddpm_hf import ExtendedDDPMScheduler

T = 50


# ---------- float64 reference maths, written from the papers, not from the code under test ----------


def reference_betas(schedule, num_steps=T, beta_start=1e-4, beta_end=0.02):
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    if schedule == "quad":
        return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), num_steps, dtype=np.float64) ** 2
    if schedule == "cosine":
        s = 0.008

        def alpha_bar(t):
            f = math.cos(((t / num_steps) + s) / (1 + s) * math.pi / 2) ** 2
            f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
            return f / f0

        return np.array([min(1 - alpha_bar(t) / alpha_bar(t - 1), 0.999) for t in range(1, num_steps + 1)])
    raise AssertionError(schedule)


def reference_quantities(schedule):
    betas = reference_betas(schedule)
    alphas_cumprod = np.cumprod(1 - betas)
    alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
    # Ho et al. 2020, eq. 7
    coef_x0 = np.sqrt(alphas_cumprod_prev) * betas / (1 - alphas_cumprod)
    coef_xt = np.sqrt(1 - betas) * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    posterior_variance = (1 - alphas_cumprod_prev) / (1 - alphas_cumprod) * betas
    return betas, alphas_cumprod, coef_x0, coef_xt, posterior_variance


def reference_target(prediction_type, x0, noise, t, schedule):
    _, alphas_cumprod, coef_x0, coef_xt, _ = reference_quantities(schedule)
    a = alphas_cumprod[t][:, None]
    xt = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    return {
        "epsilon": noise,
        "sample": x0,
        "x0": x0,
        "v_prediction": np.sqrt(a) * noise - np.sqrt(1 - a) * x0,
        "mean": coef_x0[t][:, None] * x0 + coef_xt[t][:, None] * xt,
    }[prediction_type]


def make_data(seed=0, n=6, dim=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)), rng.standard_normal((n, dim)), rng.integers(0, T, n)


def float32(array):
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


PREDICTION_TYPES = ["epsilon", "sample", "v_prediction", "mean"]
SCHEDULES = ["linear", "quad", "cosine"]


# ---------- schedules ----------


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_betas_match_float64_reference(schedule):
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule)
    np.testing.assert_allclose(scheduler.betas.double().numpy(), reference_betas(schedule), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        scheduler.alphas_cumprod.double().numpy(), np.cumprod(1 - reference_betas(schedule)), rtol=1e-4
    )


def test_cosine_betas_clip_at_0_999():
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=1000, beta_schedule="cosine")
    assert scheduler.betas.max().item() == pytest.approx(0.999)
    assert scheduler.betas[-1].item() == pytest.approx(0.999)
    assert scheduler.betas[:-10].max().item() < 0.999


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("other_class", [DDIMScheduler, DPMSolverMultistepScheduler, DDPMScheduler])
def test_other_schedulers_read_the_config_with_the_same_betas(schedule, other_class):
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type="x0")
    other = other_class.from_config(scheduler.config)
    assert other.config.prediction_type == "sample"
    torch.testing.assert_close(other.alphas_cumprod, scheduler.alphas_cumprod)


# ---------- config ----------


def public_config(scheduler):
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"beta_schedule": "quad", "prediction_type": "mean", "clip_sample": False},
        {"beta_schedule": "cosine", "prediction_type": "x0", "num_train_timesteps": 400},
        {"prediction_type": "v_prediction", "variance_type": "fixed_large", "beta_end": 0.03},
    ],
)
def test_config_round_trip(tmp_path, kwargs):
    scheduler = ExtendedDDPMScheduler(**kwargs)
    scheduler.save_pretrained(tmp_path)
    loaded = ExtendedDDPMScheduler.from_pretrained(tmp_path)
    assert public_config(loaded) == public_config(scheduler)
    assert type(loaded) is ExtendedDDPMScheduler
    torch.testing.assert_close(loaded.betas, scheduler.betas, rtol=0, atol=0)


def test_aliases_are_stored_under_diffusers_names():
    scheduler = ExtendedDDPMScheduler(beta_schedule="quad", prediction_type="x0")
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.prediction_type == "sample"
    assert ExtendedDDPMScheduler(beta_schedule="cosine").config.beta_schedule == "squaredcos_cap_v2"


def test_default_config_equals_ddpm_scheduler_config():
    ours = dict(ExtendedDDPMScheduler().config)
    theirs = dict(DDPMScheduler().config)
    for key in theirs:
        if not key.startswith("_"):
            assert ours[key] == theirs[key], key


# ---------- same numbers as DDPMScheduler when no new option is used ----------


def deterministic_model(sample, t):
    return torch.sin(sample * 1.3 + 0.01 * float(t)) * 0.8


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "fixed_small_log"])
@pytest.mark.parametrize("clip_sample", [True, False])
@pytest.mark.parametrize("num_inference_steps", [None, 7])
def test_full_loop_equals_ddpm_scheduler(prediction_type, variance_type, clip_sample, num_inference_steps):
    kwargs = dict(
        num_train_timesteps=T, prediction_type=prediction_type, variance_type=variance_type, clip_sample=clip_sample
    )
    results = []
    for scheduler in (ExtendedDDPMScheduler(**kwargs), DDPMScheduler(**kwargs)):
        if num_inference_steps:
            scheduler.set_timesteps(num_inference_steps)
        generator = torch.Generator().manual_seed(3)
        sample = torch.randn(4, 3, 8, 8, generator=generator)
        for t in scheduler.timesteps:
            sample = scheduler.step(deterministic_model(sample, t), t, sample, generator=generator).prev_sample
        results.append(sample)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


# ---------- training targets and conversions ----------


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES + ["x0"])
def test_training_target_matches_float64_reference(schedule, prediction_type):
    x0, noise, t = make_data()
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction_type)
    target = scheduler.get_training_target(float32(x0), float32(noise), torch.from_numpy(t))
    expected = reference_target(prediction_type, x0, noise, t, schedule)
    np.testing.assert_allclose(target.double().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_x0_and_epsilon_recovered_from_a_perfect_output(schedule, prediction_type):
    x0, noise, t = make_data(seed=1)
    # Moderate timesteps: for "mean" at large t, recovering x0 divides by a small coefficient (ill-conditioned).
    t = np.minimum(t, T // 2)
    _, alphas_cumprod, *_ = reference_quantities(schedule)
    xt = np.sqrt(alphas_cumprod[t][:, None]) * x0 + np.sqrt(1 - alphas_cumprod[t][:, None]) * noise
    perfect_output = reference_target(prediction_type, x0, noise, t, schedule)

    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction_type)
    x0_hat, eps_hat = scheduler.get_x0_and_epsilon(float32(perfect_output), torch.from_numpy(t), float32(xt))
    np.testing.assert_allclose(x0_hat.double().numpy(), x0, atol=2e-3)
    np.testing.assert_allclose(eps_hat.double().numpy(), noise, atol=2e-3)


def test_x0_and_epsilon_accepts_a_python_int_timestep():
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type="mean")
    sample = torch.randn(2, 3, 4, 4)
    x0, eps = scheduler.get_x0_and_epsilon(torch.randn_like(sample), 5, sample)
    assert x0.shape == eps.shape == sample.shape


# ---------- step ----------


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_mean_step_matches_float64_posterior(schedule):
    x0, noise, _ = make_data(seed=2)
    _, alphas_cumprod, coef_x0, coef_xt, posterior_variance = reference_quantities(schedule)
    scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=T, beta_schedule=schedule, prediction_type="mean", clip_sample=False
    )
    for t in (T - 1, T // 2, 1, 0):
        xt = np.sqrt(alphas_cumprod[t]) * x0 + np.sqrt(1 - alphas_cumprod[t]) * noise
        model_output = np.random.default_rng(t).standard_normal(x0.shape)  # any output: it *is* the mean
        step_noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        prev = scheduler.step(
            float32(model_output), t, float32(xt), generator=torch.Generator().manual_seed(t)
        ).prev_sample
        expected = model_output + (np.sqrt(posterior_variance[t]) * step_noise.double().numpy() if t > 0 else 0)
        np.testing.assert_allclose(prev.double().numpy(), expected, rtol=1e-4, atol=1e-4)
        # the predicted x0 inverts eq. 7
        pred_x0 = scheduler.step(float32(model_output), t, float32(xt)).pred_original_sample
        np.testing.assert_allclose(
            pred_x0.double().numpy(), (model_output - coef_xt[t] * xt) / coef_x0[t], rtol=1e-3, atol=1e-3
        )


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_inference_steps", [None, 10])
def test_perfect_model_gives_same_step_for_every_prediction_type(schedule, num_inference_steps):
    x0, noise, _ = make_data(seed=4)
    _, alphas_cumprod, *_ = reference_quantities(schedule)
    outputs = {}
    for prediction_type in PREDICTION_TYPES:
        scheduler = ExtendedDDPMScheduler(
            num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction_type, clip_sample=False
        )
        if num_inference_steps:
            scheduler.set_timesteps(num_inference_steps)
        timesteps = [int(t) for t in scheduler.timesteps if int(t) <= T // 2][:3]
        prevs = []
        for t in timesteps:
            xt = np.sqrt(alphas_cumprod[t]) * x0 + np.sqrt(1 - alphas_cumprod[t]) * noise
            perfect = reference_target(prediction_type, x0, noise, np.full(len(x0), t), schedule)
            step = scheduler.step(float32(perfect), t, float32(xt), generator=torch.Generator().manual_seed(7))
            prevs.append(step.prev_sample.double().numpy())
        outputs[prediction_type] = np.stack(prevs)
    for prediction_type in PREDICTION_TYPES[1:]:
        np.testing.assert_allclose(outputs[prediction_type], outputs["epsilon"], atol=2e-3)


def test_step_and_add_noise_shapes():
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type="mean")
    sample = torch.randn(2, 3, 8, 8)
    noisy = scheduler.add_noise(sample, torch.randn_like(sample), torch.tensor([0, T - 1]))
    assert noisy.shape == sample.shape
    out = scheduler.step(torch.randn_like(sample), 10, sample)
    assert out.prev_sample.shape == out.pred_original_sample.shape == sample.shape
    prev, pred_x0 = scheduler.step(torch.randn_like(sample), 10, sample, return_dict=False)
    assert prev.shape == pred_x0.shape == sample.shape


def test_ddim_with_mean_prediction_refuses_clearly():
    config = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type="mean").config
    ddim = DDIMScheduler.from_config(config)
    ddim.set_timesteps(5)
    sample = torch.randn(1, 2)
    with pytest.raises(ValueError, match="mean"):
        ddim.step(torch.randn_like(sample), ddim.timesteps[0], sample)


# ---------- bad input ----------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta_schedule": "quadratic"}, "quadratic.*quad"),
        ({"prediction_type": "noise"}, "noise.*epsilon"),
        ({"variance_type": "big"}, "big"),
        ({"num_train_timesteps": 0}, "num_train_timesteps"),
        ({"beta_start": 0.1, "beta_end": 0.01}, "beta_start"),
        ({"beta_end": 1.5}, "beta_end"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExtendedDDPMScheduler(**kwargs)


@pytest.mark.parametrize("num_inference_steps", [0, -3, T + 1, 2.5])
def test_bad_num_inference_steps(num_inference_steps):
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T)
    with pytest.raises(ValueError, match=f"1..{T}"):
        scheduler.set_timesteps(num_inference_steps)


def test_numpy_integer_step_counts_are_accepted_as_diffusers_does():
    ours, theirs = ExtendedDDPMScheduler(num_train_timesteps=T), DDPMScheduler(num_train_timesteps=T)
    ours.set_timesteps(np.int64(7))
    theirs.set_timesteps(np.int64(7))
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, rtol=0, atol=0)
    assert isinstance(ours.num_inference_steps, int)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_small_log", "fixed_large"])
def test_coefficient_tables_hold_each_steps_coefficients(prediction_type, variance_type):
    scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=T, prediction_type=prediction_type, variance_type=variance_type
    )
    scheduler.set_timesteps(7)
    tables = scheduler.step_coefficient_tables()
    torch.testing.assert_close(tables["timesteps"], scheduler.timesteps, rtol=0, atol=0)
    generator = torch.Generator().manual_seed(0)
    sample, output = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4, generator=generator)
    for index, timestep in enumerate(scheduler.timesteps):
        coefficients = {name: table[index] for name, table in tables.items() if name != "timesteps"}
        assert all(value.dtype == torch.float32 for value in coefficients.values())
        noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(index)) if timestep > 0 else None
        by_table = scheduler.ddpm_update(output, sample, noise, coefficients, prediction_type, clip_sample_range=1.0)
        by_step = scheduler.step(output, timestep, sample, generator=torch.Generator().manual_seed(index))
        torch.testing.assert_close(by_table[0], by_step.prev_sample, rtol=0, atol=0)
        torch.testing.assert_close(by_table[1], by_step.pred_original_sample, rtol=0, atol=0)
        if timestep == 0:
            assert tables["noise_std"][index] == 0
