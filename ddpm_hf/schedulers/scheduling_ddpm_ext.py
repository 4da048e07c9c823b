"""DDPMScheduler with the course's extra beta schedules and parameterisations.

Adds to diffusers' `DDPMScheduler`:

- beta schedules `"quad"` and `"cosine"` (the course's names),
- prediction type `"mean"`: the network predicts the posterior mean mu~_t(x_t, x_0) of q(x_{t-1} | x_t, x_0),
- `"x0"` as another name for diffusers' `"sample"` prediction type,
- public helpers that turn (x0, noise, t) into the training target of any prediction type, and any model output
  into (x0, epsilon), so that other samplers can reuse a model trained with this scheduler,
- the reverse step as a pure function of per-step coefficients (`ddpm_update`, with `step_coefficients` and
  `step_coefficient_tables`): `step` calls it, and so does a compiled whole-step sampler: the update is written once.

Every coefficient is computed in float32 from the float32 alpha_bar table, and every update runs in float32 for
half-precision samples, cast to the sample's dtype at the end. With none of the additions used and float32 samples it
computes exactly what `DDPMScheduler` computes, bit for bit; in float16 and bfloat16 it is more exact than
`DDPMScheduler`, which rounds alpha_bar to the sample's dtype before forming 1 - alpha_bar.
"""

from collections.abc import Callable
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
    """Reshape per-sample `values` (shape [] or [N]) so they broadcast over `reference` ([N, ...]). The dtype is kept:
    coefficients stay in float32 until the result they make is cast to the sample's dtype."""
    values = values.to(device=reference.device).flatten()
    return values.reshape(values.shape + (1,) * (reference.ndim - 1))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision samples (and float32), float64 for float64: the precision the update runs in."""
    return torch.promote_types(dtype, torch.float32)


def posterior_mean_coefficients_from_alphas(alpha_prod_t: torch.Tensor, alpha_prod_t_prev: torch.Tensor):
    """
    Coefficients of x0 and x_t in the posterior mean mu~_t of q(x_{t-1} | x_t, x0), Ho et al. 2020 eq. 7, for a step
    from alpha_bar_t to alpha_bar_prev (one training step, or a stride of the inference chain). The operations are
    `DDPMScheduler.step`'s, in its order, so float32 results are bit for bit the same.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: (posterior_mean_coef_x0, posterior_mean_coef_xt).
    """
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    posterior_mean_coef_x0 = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
    posterior_mean_coef_xt = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
    return posterior_mean_coef_x0, posterior_mean_coef_xt


def original_sample_from_output(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    alpha_prod_t: torch.Tensor,
    alpha_prod_t_train_prev: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """
    The predicted x0 from a model output of `prediction_type` at x_t (`sample`): eq. 15 of Ho et al. 2020 for epsilon,
    the output itself for `"sample"`, sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v for `"v_prediction"`, and eq. 7
    solved for x0 for `"mean"` (whose target is the posterior mean one *training* step back, alpha_bar_{t-1}, 1 at
    t = 0). Runs in the dtype of its inputs: callers pass float32 (or float64) tensors.
    """
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        return (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
    if prediction_type == "sample":
        return model_output
    if prediction_type == "v_prediction":
        return (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
    if prediction_type == "mean":
        coef_x0, coef_xt = posterior_mean_coefficients_from_alphas(alpha_prod_t, alpha_prod_t_train_prev)
        return (model_output - coef_xt * sample) / coef_x0
    raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")


def ddpm_update(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    noise: torch.Tensor | None,
    coefficients: dict[str, torch.Tensor],
    prediction_type: str,
    clip_sample_range: float | None = None,
    threshold: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Stages 2-6 of one DDPM reverse step x_t -> x_prev, from the step's coefficients (`ExtendedDDPMScheduler.
    step_coefficients`). A pure tensor function, so that `step` and a compiled whole-step graph run the same code.

    The coefficients are float32 numbers; the model output, x_t and the noise are brought to float32 (float64 stays
    float64), the whole update runs there, and only the results are cast to the sample's dtype: half-precision samples
    lose nothing to coefficients rounded before use (1 - alpha_bar in float16 is 0 near t = 0).

    Args:
        model_output (`torch.Tensor`): The network output at x_t, of `prediction_type`.
        sample (`torch.Tensor`): x_t.
        noise (`torch.Tensor`, *optional*): Standard normal noise of the sample's shape; None adds none.
        coefficients (`dict[str, torch.Tensor]`): `alpha_prod_t`, `alpha_prod_t_prev` (of the chain's previous
            timestep, 1 after the last), `alpha_prod_t_train_prev` (one training step back, for `"mean"`) and
            `noise_std`; scalars, or shaped to broadcast over the sample.
        prediction_type (`str`): `"epsilon"`, `"sample"`, `"v_prediction"` or `"mean"`.
        clip_sample_range (`float`, *optional*): Clip the predicted x0 to [-range, range].
        threshold (`Callable`, *optional*): Applied to the predicted x0 instead of clipping (dynamic thresholding).

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: (prev_sample, pred_original_sample), in the sample's dtype.
    """
    output_dtype = sample.dtype
    compute_dtype = _compute_dtype(output_dtype)
    model_output, sample = model_output.to(compute_dtype), sample.to(compute_dtype)
    alpha_prod_t, alpha_prod_t_prev = coefficients["alpha_prod_t"], coefficients["alpha_prod_t_prev"]

    # 2. predicted x0 (eq. 15 for epsilon; eq. 7 inverted for the posterior mean)
    pred_original_sample = original_sample_from_output(
        model_output, sample, alpha_prod_t, coefficients["alpha_prod_t_train_prev"], prediction_type
    )
    # 3. clip or threshold the predicted x0
    if threshold is not None:
        pred_original_sample = threshold(pred_original_sample)
    elif clip_sample_range is not None:
        pred_original_sample = pred_original_sample.clamp(-clip_sample_range, clip_sample_range)
    # 4. coefficients of x0 and x_t in the posterior mean, eq. 7
    pred_original_sample_coeff, current_sample_coeff = posterior_mean_coefficients_from_alphas(
        alpha_prod_t, alpha_prod_t_prev
    )
    # 5. posterior mean mu~_t
    pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample
    # 6. add noise with the step's standard deviation
    if noise is not None:
        pred_prev_sample = pred_prev_sample + coefficients["noise_std"] * noise.to(compute_dtype)
    return pred_prev_sample.to(output_dtype), pred_original_sample.to(output_dtype)


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
        checking that `num_inference_steps` (a Python or numpy integer) lies in 1..num_train_timesteps.
        """
        if timesteps is None:
            num_train_timesteps = self.config.num_train_timesteps
            is_integer = isinstance(num_inference_steps, (int, np.integer)) and not isinstance(
                num_inference_steps, bool
            )
            if not is_integer or not 1 <= num_inference_steps <= num_train_timesteps:
                raise ValueError(
                    f"num_inference_steps must be an integer in 1..{num_train_timesteps} (num_train_timesteps), "
                    f"got {num_inference_steps!r}."
                )
            num_inference_steps = int(num_inference_steps)
        super().set_timesteps(num_inference_steps=num_inference_steps, device=device, timesteps=timesteps)

    def _alphas_cumprod_at(self, timesteps: torch.Tensor | int, reference: torch.Tensor):
        """alpha_bar_t and alpha_bar_{t-1} (one training step back, 1 at t = 0) in float32, shaped to broadcast over
        `reference`."""
        timesteps = torch.as_tensor(timesteps, device=self.alphas_cumprod.device).long()
        alpha_prod_t = self.alphas_cumprod[timesteps]
        previous = self.alphas_cumprod[(timesteps - 1).clamp(min=0)]
        alpha_prod_prev = torch.where(timesteps > 0, previous, torch.ones_like(previous))
        return _expand_to(alpha_prod_t, reference), _expand_to(alpha_prod_prev, reference)

    def posterior_mean_coefficients(self, timesteps: torch.Tensor | int, reference: torch.Tensor):
        """
        Coefficients of mu~_t(x_t, x0) = posterior_mean_coef_x0 * x0 + posterior_mean_coef_xt * x_t (Ho et al. 2020,
        eq. 7) for the one-step posterior q(x_{t-1} | x_t, x0), computed in float32 and shaped to broadcast over
        `reference` (in its dtype).

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: (posterior_mean_coef_x0, posterior_mean_coef_xt).
        """
        coefficients = posterior_mean_coefficients_from_alphas(*self._alphas_cumprod_at(timesteps, reference))
        return tuple(coefficient.to(reference.dtype) for coefficient in coefficients)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor
    ) -> torch.Tensor:
        """`DDPMScheduler.add_noise`, computed in float32 for half-precision samples and cast back."""
        compute_dtype = _compute_dtype(original_samples.dtype)
        noisy = super().add_noise(original_samples.to(compute_dtype), noise.to(compute_dtype), timesteps)
        return noisy.to(original_samples.dtype)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor) -> torch.Tensor:
        """`DDPMScheduler.get_velocity`, computed in float32 for half-precision samples and cast back."""
        compute_dtype = _compute_dtype(sample.dtype)
        return super().get_velocity(sample.to(compute_dtype), noise.to(compute_dtype), timesteps).to(sample.dtype)

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
            compute_dtype = _compute_dtype(original_samples.dtype)
            clean = original_samples.to(compute_dtype)
            noisy = self.add_noise(clean, noise.to(compute_dtype), timesteps)
            coef_x0, coef_xt = posterior_mean_coefficients_from_alphas(*self._alphas_cumprod_at(timesteps, clean))
            return (coef_x0 * clean + coef_xt * noisy).to(original_samples.dtype)
        raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")

    def epsilon_loss_weights(
        self, timesteps: torch.Tensor, reference: torch.Tensor, min_snr_gamma: float | None = None
    ) -> torch.Tensor:
        """
        Per-sample weights w_t that make the weighted squared error of this scheduler's prediction type equal to the
        squared error of the epsilon it implies: w_t * |output - target|^2 = |eps_pred - eps|^2 at fixed x_t. With
        them every prediction type trains the simplified objective of Ho et al. 2020 (eq. 14). Since the target is
        affine in eps at fixed x_t, w_t = 1 / (d target / d eps)^2: 1 for epsilon, alpha_bar / (1 - alpha_bar) for
        x0, alpha_bar for v, and alpha_bar / (posterior_mean_coef_x0^2 (1 - alpha_bar)) for the posterior mean.

        Args:
            timesteps (`torch.Tensor`): Training timesteps, shape [N].
            reference (`torch.Tensor`): A tensor of the samples' shape, dtype and device, for broadcasting.
            min_snr_gamma (`float`, *optional*): Also weight the implied epsilon error by min(SNR_t, gamma) / SNR_t,
                SNR_t = alpha_bar_t / (1 - alpha_bar_t) (Min-SNR-gamma, Hang et al. 2023).

        Returns:
            `torch.Tensor`: Weights broadcastable against `reference`, computed in float32, in its dtype.
        """
        alpha_prod_t, alpha_prod_prev = self._alphas_cumprod_at(timesteps, reference)
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            weights = torch.ones_like(alpha_prod_t)
        elif prediction_type == "sample":
            weights = alpha_prod_t / (1 - alpha_prod_t)
        elif prediction_type == "v_prediction":
            weights = alpha_prod_t
        elif prediction_type == "mean":
            coef_x0, _ = posterior_mean_coefficients_from_alphas(alpha_prod_t, alpha_prod_prev)
            weights = alpha_prod_t / (coef_x0**2 * (1 - alpha_prod_t))
        else:
            raise ValueError(f"Unknown prediction_type {prediction_type!r}; choose one of {list(PREDICTION_TYPES)}.")
        if min_snr_gamma is not None:
            # min(SNR, gamma) / SNR written as min(1, gamma / SNR), so that a zero terminal SNR weighs 1, not 0 / 0
            weights = weights * (min_snr_gamma * (1 - alpha_prod_t) / alpha_prod_t).clamp(max=1)
        return weights.to(reference.dtype)

    def get_x0_and_epsilon(
        self, model_output: torch.Tensor, timesteps: torch.Tensor | int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Turns a model output of this scheduler's `prediction_type` into the predicted clean sample x0 and noise eps,
        using x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps. No clipping is applied. Computed in float32 and
        returned in the sample's dtype.

        Args:
            model_output (`torch.Tensor`): The network output at x_t.
            timesteps (`torch.Tensor` or `int`): Training timestep(s) t of `sample`: a scalar or one per sample.
            sample (`torch.Tensor`): The noisy input x_t.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: (x0, epsilon).
        """
        compute_dtype = _compute_dtype(sample.dtype)
        output, noisy = model_output.to(compute_dtype), sample.to(compute_dtype)
        alpha_prod_t, alpha_prod_train_prev = self._alphas_cumprod_at(timesteps, noisy)
        prediction_type = self.config.prediction_type
        pred_original_sample = original_sample_from_output(
            output, noisy, alpha_prod_t, alpha_prod_train_prev, prediction_type
        )
        if prediction_type == "epsilon":
            pred_epsilon = output
        else:
            pred_epsilon = (noisy - alpha_prod_t**0.5 * pred_original_sample) / (1 - alpha_prod_t) ** 0.5
        return pred_original_sample.to(sample.dtype), pred_epsilon.to(sample.dtype)

    def step_coefficients(
        self, timestep: int | torch.Tensor, predicted_variance: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """
        Stage 1 of `step`: the float32 numbers of the reverse step from `timestep` to the previous timestep of the
        chain (of `set_timesteps`, or one training step), as `ddpm_update` reads them.

        Args:
            timestep (`int` or `torch.Tensor`): The current training timestep t.
            predicted_variance (`torch.Tensor`, *optional*): The model's variance output (learned variance types).

        Returns:
            `dict[str, torch.Tensor]`: `alpha_prod_t`, `alpha_prod_t_prev` (1 after the last step),
            `alpha_prod_t_train_prev` (alpha_bar_{t-1}, 1 at t = 0) and `noise_std` (the standard deviation of the
            step's noise; 0 at t = 0, where none is added).
        """
        t = timestep
        prev_t = self.previous_timestep(t)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        alpha_prod_t_train_prev = self.alphas_cumprod[t - 1] if t > 0 else self.one
        if t > 0:
            variance = self._get_variance(t, predicted_variance=predicted_variance)
            if self.variance_type == "fixed_small_log":
                noise_std = variance  # already exp(0.5 log variance)
            elif self.variance_type == "learned_range":
                noise_std = torch.exp(0.5 * variance)  # a log variance there
            else:
                noise_std = variance ** (0.5)
        else:
            noise_std = torch.zeros_like(alpha_prod_t)
        return {
            "alpha_prod_t": alpha_prod_t,
            "alpha_prod_t_prev": alpha_prod_t_prev,
            "alpha_prod_t_train_prev": alpha_prod_t_train_prev,
            "noise_std": noise_std,
        }

    def step_coefficient_tables(self, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        """
        `step_coefficients` of every timestep of the chain set by `set_timesteps`, stacked into float32 tables indexed
        by step (plus `timesteps`), for a sampler that gathers a step's numbers on the device and calls `ddpm_update`
        (a compiled whole-step graph). Fixed variance types only: a learned variance depends on the model output.
        """
        if self.variance_type in ("learned", "learned_range"):
            raise ValueError(
                f"Coefficient tables need a fixed variance; this scheduler has variance_type={self.variance_type!r}."
            )
        rows = [self.step_coefficients(timestep) for timestep in self.timesteps.tolist()]
        tables = {name: torch.stack([row[name] for row in rows]).float().to(device) for name in rows[0]}
        return tables | {"timesteps": self.timesteps.to(device)}

    ddpm_update = staticmethod(ddpm_update)

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
        The coefficients are float32 and the update runs in float32 for half-precision samples (`ddpm_update`); the
        results come back in the sample's dtype. The noise is drawn as `DDPMScheduler.step` draws it.

        Args:
            model_output (`torch.Tensor`): The network output at (`sample`, `timestep`).
            timestep (`int`): The current training timestep t.
            sample (`torch.Tensor`): The current x_t.
            generator (`torch.Generator`, *optional*): Source of the step's noise.
            return_dict (`bool`, defaults to `True`): Return a `DDPMSchedulerOutput` instead of a tuple.

        Returns:
            `DDPMSchedulerOutput` or `tuple`: (prev_sample, pred_original_sample).
        """
        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ["learned", "learned_range"]:
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)
        else:
            predicted_variance = None

        # 1. alphas and the noise scale from t to the previous timestep of the (possibly strided) chain
        coefficients = self.step_coefficients(timestep, predicted_variance)
        noise = None
        if timestep > 0:
            noise = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
        # 2-6. predicted x0, clipping or thresholding, posterior mean (eq. 7), noise
        pred_prev_sample, pred_original_sample = self.ddpm_update(
            model_output,
            sample,
            noise,
            coefficients,
            self.config.prediction_type,
            clip_sample_range=self.config.clip_sample_range if self.config.clip_sample else None,
            threshold=self._threshold_sample if self.config.thresholding else None,
        )
        if not return_dict:
            return (pred_prev_sample, pred_original_sample)
        return DDPMSchedulerOutput(prev_sample=pred_prev_sample, pred_original_sample=pred_original_sample)
