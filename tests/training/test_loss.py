"""The training loss: the epsilon-equivalent weights against float64 maths, and the invariance they promise."""

import numpy as np
import pytest
import torch

from ddpm_hf import ExtendedDDPMScheduler
from ddpm_hf.training import describe_loss, diffusion_loss, diffusion_loss_at, resolve_loss_weighting

T = 1000
PREDICTION_TYPES = ["epsilon", "sample", "v_prediction", "mean"]


def float64_target(prediction_type, x0, noise, alphas_cumprod, t):
    """The target of each prediction type in float64 (Ho et al. 2020 eq. 7 for the posterior mean)."""
    a = alphas_cumprod[t][:, None]
    a_prev = np.where(t > 0, alphas_cumprod[np.maximum(t - 1, 0)], 1.0)[:, None]
    beta = 1 - a / a_prev
    xt = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    return {
        "epsilon": noise,
        "sample": x0,
        "v_prediction": np.sqrt(a) * noise - np.sqrt(1 - a) * x0,
        "mean": np.sqrt(a_prev) * beta / (1 - a) * x0 + np.sqrt(1 - beta) * (1 - a_prev) / (1 - a) * xt,
    }[prediction_type]


@pytest.mark.parametrize("schedule", ["linear", "quad", "cosine"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_epsilon_weights_turn_target_errors_into_noise_errors(schedule, prediction_type):
    """At fixed x_t, two noises (hence two x0) give two targets; w * |target gap|^2 must equal |noise gap|^2."""
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction_type)
    alphas_cumprod = scheduler.alphas_cumprod.double().numpy()
    rng = np.random.default_rng(0)
    t = np.array([0, 1, 10, 100, 400, 700])
    xt, noise_1, noise_2 = (rng.standard_normal((len(t), 2)) for _ in range(3))
    a = alphas_cumprod[t][:, None]
    targets = [
        float64_target(prediction_type, (xt - np.sqrt(1 - a) * noise) / np.sqrt(a), noise, alphas_cumprod, t)
        for noise in (noise_1, noise_2)
    ]
    expected = ((noise_1 - noise_2) ** 2).sum(1) / ((targets[0] - targets[1]) ** 2).sum(1)
    weights = scheduler.epsilon_loss_weights(torch.from_numpy(t), torch.zeros(len(t), 2))
    # 1e-3: the scheduler forms beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} in float32, which loses digits at small t
    np.testing.assert_allclose(weights[:, 0].double().numpy(), expected, rtol=1e-3)


def test_a_mean_model_weighted_scores_like_the_epsilon_model_it_implies():
    """A posterior-mean model built from an epsilon model has, with epsilon weighting, the epsilon model's loss."""
    torch.manual_seed(0)
    epsilon_net = torch.nn.Linear(3, 2).double()
    schedulers = {
        kind: ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type=kind) for kind in ("epsilon", "mean")
    }

    class Output:
        def __init__(self, sample):
            self.sample = sample

    def epsilon_model(x, t):
        return Output(epsilon_net(torch.cat([x, t[:, None].double() / T], dim=1)))

    def mean_model(x, t):
        scheduler = schedulers["epsilon"]
        x0, eps = scheduler.get_x0_and_epsilon(epsilon_model(x, t).sample, t, x)
        coef_x0, coef_xt = schedulers["mean"].posterior_mean_coefficients(t, x)
        return Output(coef_x0 * x0 + coef_xt * x)

    clean = torch.randn(256, 2, dtype=torch.float64)
    losses = {}
    for name, model, weighting in (("epsilon", epsilon_model, "uniform"), ("mean", mean_model, "epsilon")):
        generator = torch.Generator().manual_seed(1)
        losses[name] = diffusion_loss(model, schedulers[name], clean, generator, loss_weighting=weighting).item()
    assert losses["mean"] == pytest.approx(losses["epsilon"], rel=1e-3)
    generator = torch.Generator().manual_seed(1)
    unweighted = diffusion_loss(mean_model, schedulers["mean"], clean, generator, loss_weighting="uniform").item()
    assert unweighted < losses["epsilon"] / 100  # what made the mean model stop learning with plain MSE


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_min_snr_weights_the_noise_error_by_min_snr_gamma_over_snr(schedule, prediction_type):
    """Min-SNR-5 (Hang et al. 2023): the loss is the mean over samples of min(SNR_t, 5) / SNR_t times the squared error
    of the implied noise, SNR_t = alpha_bar_t / (1 - alpha_bar_t), in float64 from the scheduler's alphas."""
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction_type)
    alphas_cumprod = scheduler.alphas_cumprod.double().numpy()
    rng = np.random.default_rng(0)
    t = np.array([0, 1, 10, 100, 400, 700, 999])
    x0, noise, output = (rng.standard_normal((len(t), 3)) for _ in range(3))

    class FixedOutput:
        sample = torch.from_numpy(output).float()

    loss = diffusion_loss_at(
        lambda x, timesteps: FixedOutput,
        scheduler,
        torch.from_numpy(x0).float(),
        torch.from_numpy(noise).float(),
        torch.from_numpy(t),
        loss_weighting="min_snr",
    )
    # The implied noise of the output at x_t, against the true noise, in float64
    a = alphas_cumprod[t][:, None]
    xt = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    implied_x0 = {
        "epsilon": (xt - np.sqrt(1 - a) * output) / np.sqrt(a),
        "sample": output,
        "v_prediction": np.sqrt(a) * xt - np.sqrt(1 - a) * output,
    }[prediction_type]
    implied_noise = (xt - np.sqrt(a) * implied_x0) / np.sqrt(1 - a)
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    expected = (np.minimum(snr, 5.0) / snr * ((implied_noise - noise) ** 2).mean(1)).mean()
    # float32 inputs and weights: at t = 0 the x0 and v errors are scaled by sqrt(SNR) ~ 100 into noise errors
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_min_snr_is_finite_at_a_zero_terminal_snr():
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, rescale_betas_zero_snr=True)
    assert scheduler.alphas_cumprod[-1] == 0
    t = torch.tensor([T - 1, 0])
    loss = diffusion_loss_at(
        lambda x, timesteps: type("Out", (), {"sample": torch.zeros(2, 3)}),
        scheduler,
        torch.ones(2, 3),
        torch.ones(2, 3),
        t,
        loss_weighting="min_snr",
    )
    # epsilon prediction of zeros against a noise of ones: squared error 1 everywhere; at SNR 0 the weight is 1,
    # at t = 0 it is 5 / SNR_0
    snr_0 = (scheduler.alphas_cumprod[0].double() / (1 - scheduler.alphas_cumprod[0].double())).item()
    assert loss.item() == pytest.approx((1 + 5 / snr_0) / 2, rel=1e-5)


def test_auto_weighting_and_bad_names():
    assert resolve_loss_weighting("auto", "mean") == "epsilon"
    assert [resolve_loss_weighting("auto", kind) for kind in ("epsilon", "sample", "v_prediction")] == ["uniform"] * 3
    assert resolve_loss_weighting("epsilon", "sample") == "epsilon"
    with pytest.raises(
        ValueError, match=r"Unknown loss_weighting 'snr'; choose one of \['auto', 'uniform', 'epsilon', 'min_snr'\]"
    ):
        resolve_loss_weighting("snr", "epsilon")


def test_the_loss_is_described_as_the_weighting_it_resolves_to():
    assert describe_loss("auto", "epsilon") == "MSE on the epsilon target"
    assert describe_loss("uniform", "sample") == "MSE on the sample target"
    assert describe_loss("auto", "mean") == "MSE of the noise implied by the mean output"
    assert describe_loss("epsilon", "epsilon") == "noise MSE"
    assert describe_loss("min_snr", "epsilon") == "Min-SNR-5 weighted noise MSE"
    assert (
        describe_loss("min_snr", "v_prediction")
        == "Min-SNR-5 weighted MSE of the noise implied by the v_prediction output"
    )
    with pytest.raises(ValueError, match="'snr'"):
        describe_loss("snr", "epsilon")
