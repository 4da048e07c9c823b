"""The DDPM training objective for any prediction type of ExtendedDDPMScheduler."""

import torch
import torch.nn.functional as F

LOSS_WEIGHTINGS = ("auto", "uniform", "epsilon", "min_snr")
MIN_SNR_GAMMA = 5.0  # Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy": gamma = 5


def resolve_loss_weighting(loss_weighting: str, prediction_type: str) -> str:
    """
    The weighting a run really uses: `"auto"` is `"epsilon"` for posterior-mean prediction (which does not learn
    with the uniform weighting, docs/TOY2D.md) and `"uniform"` for the other prediction types.

    Raises:
        `ValueError`: For a weighting outside `LOSS_WEIGHTINGS`.
    """
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"Unknown loss_weighting {loss_weighting!r}; choose one of {list(LOSS_WEIGHTINGS)}.")
    if loss_weighting == "auto":
        return "epsilon" if prediction_type == "mean" else "uniform"
    return loss_weighting


def describe_loss(loss_weighting: str, prediction_type: str) -> str:
    """
    What a run's training loss is, in words for a figure's title: plain MSE on the prediction target, or the
    (Min-SNR weighted) MSE of the implied noise, after `resolve_loss_weighting`.

    Raises:
        `ValueError`: For a weighting outside `LOSS_WEIGHTINGS`.
    """
    weighting = resolve_loss_weighting(loss_weighting, prediction_type)
    if weighting == "uniform":
        return f"MSE on the {prediction_type} target"
    noise_mse = (
        "noise MSE" if prediction_type == "epsilon" else f"MSE of the noise implied by the {prediction_type} output"
    )
    if weighting == "epsilon":
        return noise_mse
    return f"Min-SNR-{MIN_SNR_GAMMA:g} weighted {noise_mse}"


def diffusion_loss(
    model,
    scheduler,
    clean_samples: torch.Tensor,
    generator: torch.Generator | None = None,
    loss_weighting: str = "auto",
    **model_kwargs,
) -> torch.Tensor:
    """
    Simplified DDPM loss (Ho et al. 2020, eq. 14) generalised to any prediction type: draw t ~ U{0..T-1} and
    eps ~ N(0, I), form x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, and regress the network output at
    (x_t, t) onto `scheduler.get_training_target(x0, eps, t)` with a (weighted) mean squared error.

    Args:
        model: Called as `model(x_t, t, **model_kwargs).sample`.
        scheduler (`ExtendedDDPMScheduler`): Defines the forward process and the target.
        clean_samples (`torch.Tensor`): A batch of data x0.
        generator (`torch.Generator`, *optional*): Source of t and eps, on the device of `clean_samples`; the
            global RNG when not given.
        loss_weighting (`str`, defaults to `"auto"`): `"uniform"`: plain MSE on the target; `"epsilon"`: each
            sample's squared error times `scheduler.epsilon_loss_weights`, i.e. the MSE of the implied epsilon
            whatever the prediction type; `"min_snr"`: that noise MSE with each t weighted by
            min(SNR_t, 5) / SNR_t, SNR_t = alpha_bar_t / (1 - alpha_bar_t) (Min-SNR-5, Hang et al. 2023, which
            trains faster by not letting the nearly clean timesteps dominate); `"auto"`: see `resolve_loss_weighting`.
        **model_kwargs: Extra inputs of the model (e.g. class labels).

    Returns:
        `torch.Tensor`: The scalar loss (float32).
    """
    device = clean_samples.device
    noise = torch.randn(clean_samples.shape, generator=generator, device=device, dtype=clean_samples.dtype)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (clean_samples.shape[0],), generator=generator, device=device
    )
    return diffusion_loss_at(model, scheduler, clean_samples, noise, timesteps, loss_weighting, **model_kwargs)


def diffusion_loss_at(
    model,
    scheduler,
    clean_samples: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    loss_weighting: str = "auto",
    **model_kwargs,
) -> torch.Tensor:
    """
    `diffusion_loss` at given noise and timesteps instead of drawn ones (e.g. the fixed draws of a held-out loss).

    Args:
        model, scheduler, clean_samples, loss_weighting, **model_kwargs: As in `diffusion_loss`.
        noise (`torch.Tensor`): eps, of the shape of `clean_samples`.
        timesteps (`torch.Tensor`): One t in 0..T-1 per sample.

    Returns:
        `torch.Tensor`: The scalar loss (float32), the mean over the samples.
    """
    loss_weighting = resolve_loss_weighting(loss_weighting, scheduler.config.prediction_type)
    noisy_samples = scheduler.add_noise(clean_samples, noise, timesteps)
    target = scheduler.get_training_target(clean_samples, noise, timesteps)
    model_output = model(noisy_samples, timesteps, **model_kwargs).sample
    if loss_weighting == "uniform":
        return F.mse_loss(model_output.float(), target.float())
    squared_error = (model_output.float() - target.float()) ** 2
    min_snr_gamma = MIN_SNR_GAMMA if loss_weighting == "min_snr" else None
    return (squared_error * scheduler.epsilon_loss_weights(timesteps, squared_error, min_snr_gamma)).mean()
