"""The DDPM training objective for any prediction type of ExtendedDDPMScheduler."""

import torch
import torch.nn.functional as F


def diffusion_loss(
    model, scheduler, clean_samples: torch.Tensor, generator: torch.Generator | None = None, **model_kwargs
) -> torch.Tensor:
    """
    Simplified DDPM loss (Ho et al. 2020, eq. 14) generalised to any prediction type: draw t ~ U{0..T-1} and
    eps ~ N(0, I), form x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, and regress the network output at
    (x_t, t) onto `scheduler.get_training_target(x0, eps, t)` with mean squared error.

    Args:
        model: Called as `model(x_t, t, **model_kwargs).sample`.
        scheduler (`ExtendedDDPMScheduler`): Defines the forward process and the target.
        clean_samples (`torch.Tensor`): A batch of data x0.
        generator (`torch.Generator`, *optional*): Source of t and eps, on the device of `clean_samples`; the
            global RNG when not given.
        **model_kwargs: Extra inputs of the model (e.g. class labels).

    Returns:
        `torch.Tensor`: The scalar loss (float32).
    """
    device = clean_samples.device
    noise = torch.randn(clean_samples.shape, generator=generator, device=device, dtype=clean_samples.dtype)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (clean_samples.shape[0],), generator=generator, device=device
    )
    noisy_samples = scheduler.add_noise(clean_samples, noise, timesteps)
    target = scheduler.get_training_target(clean_samples, noise, timesteps)
    model_output = model(noisy_samples, timesteps, **model_kwargs).sample
    return F.mse_loss(model_output.float(), target.float())
