"""DDPMScheduler with the course's extra beta schedules and parameterisations.

Adds to diffusers' `DDPMScheduler`:

- beta schedules `"quad"` and `"cosine"` (the course's names),
- prediction type `"mean"`: the network predicts the posterior mean mu~_t(x_t, x_0) of q(x_{t-1} | x_t, x_0),
- `"x0"` as another name for diffusers' `"sample"` prediction type,
- public helpers that turn (x0, noise, t) into the training target of any prediction type, and any model output
  into (x0, epsilon), so that other samplers can reuse a model trained with this scheduler.

With none of the additions used it computes exactly what `DDPMScheduler` computes.
"""

from typing import Literal

import numpy as np
import torch

# SchedulerMixin must be a name in this module: DiffusionPipeline.from_pretrained finds how to load a component of a
# custom library by looking the diffusers base classes up in the component's module.
from diffusers import DDPMScheduler, SchedulerMixin  # noqa: F401
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

# diffusers' own schedules, then ours. "quad" and "cosine" give the same betas as diffusers' "scaled_linear" and
# "squaredcos_cap_v2"; the config stores diffusers' name so that every diffusers scheduler can read it.
DIFFUSERS_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace")
BETA_SCHEDULE_ALIASES = {"quad": "scaled_linear", "cosine": "squaredcos_cap_v2"}
BETA_SCHEDULES = DIFFUSERS_BETA_SCHEDULES + tuple(BETA_SCHEDULE_ALIASES)

PREDICTION_TYPE_ALIASES = {"x0": "sample"}
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "mean") + tuple(PREDICTION_TYPE_ALIASES)
VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")


def _expand_to(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample `values` (shape [] or [N]) so they broadcast over `reference` ([N, ...])."""
    values = values.to(device=reference.device, dtype=reference.dtype).flatten()
    return values.reshape(values.shape + (1,) * (reference.ndim - 1))


class ExtendedDDPMScheduler(DDPMScheduler):
    """
    [`~diffusers.DDPMScheduler`] plus the beta schedules and parameterisations of the DDPM course labs.

    Every argument of `DDPMScheduler` keeps its meaning and default; the additions are new values of two of them.

    Args:
        num_train_timesteps (`int`, defaults to 1000): Number of diffusion steps T used in training.
        beta_start (`float`, defaults to 0.0001): First beta of the `linear`, `quad` and `scaled_linear` schedules.
        beta_end (`float`, defaults to 0.02): Last beta of those schedules.
        beta_schedule (`str`, defaults to `"linear"`): Any schedule diffusers' `DDPMScheduler` accepts
            (`"linear"`, `"scaled_linear"`, `"squaredcos_cap_v2"`, `"sigmoid"`, `"laplace"`), plus `"quad"`
            (linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2) and `"cosine"` (Nichol & Dhariwal 2021, s = 0.008,
            betas clipped at 0.999). These two equal diffusers' `"scaled_linear"` and `"squaredcos_cap_v2"`, and are
            stored in the config under those names so that DDIM, DPM-Solver and plain `DDPMScheduler` read it.
        trained_betas (`np.ndarray` or `list[float]`, *optional*): Betas to use instead of a named schedule.
        variance_type (`str`, defaults to `"fixed_small"`): As in `DDPMScheduler`.
        clip_sample (`bool`, defaults to `True`): Clip the predicted x0 to `[-clip_sample_range, clip_sample_range]`.
            Images in [-1, 1] want this; 2D point clouds do not.
        prediction_type (`str`, defaults to `"epsilon"`): What the network predicts: `"epsilon"` (the noise),
            `"sample"` (x0; `"x0"` is accepted and stored as `"sample"`), `"v_prediction"`, or `"mean"` (the
            posterior mean mu~_t(x_t, x0) of q(x_{t-1} | x_t, x0), eq. 7 of Ho et al. 2020).
        thresholding, dynamic_thresholding_ratio, clip_sample_range, sample_max_value, timestep_spacing,
        steps_offset, rescale_betas_zero_snr: As in `DDPMScheduler`.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        variance_type: str = "fixed_small",
        clip_sample: bool = True,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ):
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"Unknown beta_schedule {beta_schedule!r}; choose one of {list(BETA_SCHEDULES)}.")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"Unknown variance_type {variance_type!r}; choose one of {list(VARIANCE_TYPES)}.")
        if not isinstance(num_train_timesteps, int) or num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be a positive integer, got {num_train_timesteps!r}.")
        if trained_betas is None and not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"Need 0 < beta_start <= beta_end < 1, got beta_start={beta_start!r}, beta_end={beta_end!r}."
            )

        canonical_schedule = BETA_SCHEDULE_ALIASES.get(beta_schedule, beta_schedule)
        canonical_prediction = PREDICTION_TYPE_ALIASES.get(prediction_type, prediction_type)
        # The parent's own decorator would register its arguments again; call the undecorated body instead so the
        # config holds exactly what was registered here.
        DDPMScheduler.__init__.__wrapped__(
            self,
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=canonical_schedule,
            trained_betas=trained_betas,
            variance_type=variance_type,
            clip_sample=clip_sample,
            prediction_type=canonical_prediction,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            clip_sample_range=clip_sample_range,
            sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        if canonical_schedule != beta_schedule or canonical_prediction != prediction_type:
            self.register_to_config(beta_schedule=canonical_schedule, prediction_type=canonical_prediction)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ):
        """
        Sets the discrete timesteps of the reverse chain, as [`~diffusers.DDPMScheduler.set_timesteps`] does, after
        checking that `num_inference_steps` lies in 1..num_train_timesteps.
        """
        if timesteps is None:
            num_train_timesteps = self.config.num_train_timesteps
            if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= num_train_timesteps:
                raise ValueError(
                    f"num_inference_steps must be an integer in 1..{num_train_timesteps} (num_train_timesteps), "
                    f"got {num_inference_steps!r}."
                )
        super().set_timesteps(num_inference_steps=num_inference_steps, device=device, timesteps=timesteps)

    def _alphas_cumprod_at(self, timesteps: torch.Tensor | int, reference: torch.Tensor):
        """alpha_bar_t and alpha_bar_{t-1} (one training step back, 1 at t = 0), shaped to broadcast over
        `reference`."""
        timesteps = torch.as_tensor(timesteps, device=self.alphas_cumprod.device).long()
        alpha_prod_t = self.alphas_cumprod[timesteps]
        previous = self.alphas_cumprod[(timesteps - 1).clamp(min=0)]
        alpha_prod_prev = torch.where(timesteps > 0, previous, torch.ones_like(previous))
        return _expand_to(alpha_prod_t, reference), _expand_to(alpha_prod_prev, reference)

    def posterior_mean_coefficients(self, timesteps: torch.Tensor | int, reference: torch.Tensor):
        """
        Coefficients of mu~_t(x_t, x0) = posterior_mean_coef_x0 * x0 + posterior_mean_coef_xt * x_t (Ho et al. 2020,
        eq. 7) for the one-step posterior q(x_{t-1} | x_t, x0), shaped to broadcast over `reference`.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: (posterior_mean_coef_x0, posterior_mean_coef_xt).
        """
        alpha_prod_t, alpha_prod_prev = self._alphas_cumprod_at(timesteps, reference)
        beta_t = 1 - alpha_prod_t / alpha_prod_prev
        posterior_mean_coef_x0 = alpha_prod_prev**0.5 * beta_t / (1 - alpha_prod_t)
        posterior_mean_coef_xt = (1 - beta_t) ** 0.5 * (1 - alpha_prod_prev) / (1 - alpha_prod_t)
        return posterior_mean_coef_x0, posterior_mean_coef_xt

    def get_training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """
        The regression target of the network for this scheduler's `prediction_type`.

        Args:
            original_samples (`torch.Tensor`): Clean data x0, shape [N, ...].
            noise (`torch.Tensor`): The noise epsilon used to make x_t with `add_noise`, same shape.
            timesteps (`torch.Tensor`): Training timesteps, shape [N] (or a scalar for all samples).

        Returns:
            `torch.Tensor`: epsilon, x0, v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x0, or
            mu~_t(x_t, x0) with x_t = `add_noise(original_samples, noise, timesteps)`.
        """
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            return noise
        if prediction_type == "sample":
            return original_samples
        if prediction_type == "v_prediction":
            return self.get_velocity(original_samples, noise, timesteps)
        if prediction_type == "mean":
            noisy_samples = self.add_noise(original_samples, noise, timesteps)
            coef_x0, coef_xt = self.posterior_mean_coefficients(timesteps, original_samples)
            return coef_x0 * original_samples + coef_xt * noisy_samples
        raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")

    def epsilon_loss_weights(self, timesteps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """
        Per-sample weights w_t that make the weighted squared error of this scheduler's prediction type equal to the
        squared error of the epsilon it implies: w_t * |output - target|^2 = |eps_pred - eps|^2 at fixed x_t. With
        them every prediction type trains the simplified objective of Ho et al. 2020 (eq. 14). Since the target is
        affine in eps at fixed x_t, w_t = 1 / (d target / d eps)^2: 1 for epsilon, alpha_bar / (1 - alpha_bar) for
        x0, alpha_bar for v, and alpha_bar / (posterior_mean_coef_x0^2 (1 - alpha_bar)) for the posterior mean.

        Args:
            timesteps (`torch.Tensor`): Training timesteps, shape [N].
            reference (`torch.Tensor`): A tensor of the samples' shape, dtype and device, for broadcasting.

        Returns:
            `torch.Tensor`: Weights broadcastable against `reference`.
        """
        alpha_prod_t, _ = self._alphas_cumprod_at(timesteps, reference)
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            return torch.ones_like(alpha_prod_t)
        if prediction_type == "sample":
            return alpha_prod_t / (1 - alpha_prod_t)
        if prediction_type == "v_prediction":
            return alpha_prod_t
        if prediction_type == "mean":
            coef_x0, _ = self.posterior_mean_coefficients(timesteps, reference)
            return alpha_prod_t / (coef_x0**2 * (1 - alpha_prod_t))
        raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")

    def get_x0_and_epsilon(
        self, model_output: torch.Tensor, timesteps: torch.Tensor | int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Turns a model output of this scheduler's `prediction_type` into the predicted clean sample x0 and noise eps,
        using x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps. No clipping is applied.

        Args:
            model_output (`torch.Tensor`): The network output at x_t.
            timesteps (`torch.Tensor` or `int`): Training timestep(s) t of `sample`: a scalar or one per sample.
            sample (`torch.Tensor`): The noisy input x_t.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: (x0, epsilon).
        """
        alpha_prod_t, _ = self._alphas_cumprod_at(timesteps, sample)
        sqrt_alpha_prod, sqrt_beta_prod = alpha_prod_t**0.5, (1 - alpha_prod_t) ** 0.5
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            return (sample - sqrt_beta_prod * model_output) / sqrt_alpha_prod, model_output
        if prediction_type == "sample":
            pred_original_sample = model_output
        elif prediction_type == "v_prediction":
            pred_original_sample = sqrt_alpha_prod * sample - sqrt_beta_prod * model_output
        elif prediction_type == "mean":
            coef_x0, coef_xt = self.posterior_mean_coefficients(timesteps, sample)
            pred_original_sample = (model_output - coef_xt * sample) / coef_x0
        else:
            raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")
        return pred_original_sample, (sample - sqrt_alpha_prod * pred_original_sample) / sqrt_beta_prod

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DDPMSchedulerOutput | tuple:
        """
        One reverse step x_t -> x_{t-1} (or to the previous timestep of `set_timesteps`), for every prediction type.

        Args:
            model_output (`torch.Tensor`): The network output at (`sample`, `timestep`).
            timestep (`int`): The current training timestep t.
            sample (`torch.Tensor`): The current x_t.
            generator (`torch.Generator`, *optional*): Source of the step's noise.
            return_dict (`bool`, defaults to `True`): Return a `DDPMSchedulerOutput` instead of a tuple.

        Returns:
            `DDPMSchedulerOutput` or `tuple`: (prev_sample, pred_original_sample).
        """
        t = timestep
        prev_t = self.previous_timestep(t)

        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ["learned", "learned_range"]:
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)
        else:
            predicted_variance = None

        # 1. alphas and betas from t to the previous timestep of the (possibly strided) chain
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t

        # 2. predicted x0 from the model output (eq. 15 of Ho et al. 2020 for epsilon; inverted eq. 7 for "mean")
        pred_original_sample, _ = self.get_x0_and_epsilon(model_output, t, sample)

        # 3. clip or threshold the predicted x0
        if self.config.thresholding:
            pred_original_sample = self._threshold_sample(pred_original_sample)
        elif self.config.clip_sample:
            pred_original_sample = pred_original_sample.clamp(
                -self.config.clip_sample_range, self.config.clip_sample_range
            )

        # 4. coefficients of x0 and x_t in the posterior mean, eq. 7
        pred_original_sample_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        current_sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t

        # 5. posterior mean mu~_t
        pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample

        # 6. add noise with the chosen variance
        variance = 0
        if t > 0:
            variance_noise = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            if self.variance_type == "fixed_small_log":
                variance = self._get_variance(t, predicted_variance=predicted_variance) * variance_noise
            elif self.variance_type == "learned_range":
                variance = self._get_variance(t, predicted_variance=predicted_variance)
                variance = torch.exp(0.5 * variance) * variance_noise
            else:
                variance = (self._get_variance(t, predicted_variance=predicted_variance) ** 0.5) * variance_noise

        pred_prev_sample = pred_prev_sample + variance

        if not return_dict:
            return (pred_prev_sample, pred_original_sample)
        return DDPMSchedulerOutput(prev_sample=pred_prev_sample, pred_original_sample=pred_original_sample)
