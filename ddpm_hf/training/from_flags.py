"""The training components the flag groups describe: the noise scheduler, AdamW, its learning-rate schedule and the
EMA of the weights, built the same way for every training script."""

from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.optim import AdamW

from ..schedulers import ExtendedDDPMScheduler


def make_noise_scheduler(args, **settings) -> ExtendedDDPMScheduler:
    """
    The training scheduler of the diffusion flags (`add_diffusion_flags`): T, the beta schedule and its ends, and the
    prediction type, plus `settings`, other `ExtendedDDPMScheduler` arguments (e.g. `clip_sample=False` for 2D
    points, or the settings a fine-tune keeps from its pretrained scheduler).
    """
    return ExtendedDDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
        **settings,
    )


def make_optimizer(args, parameters, fused: bool | None = None) -> AdamW:
    """AdamW of the optimiser flags (`add_optimizer_flags`); `fused` as torch's (None: torch's choice)."""
    return AdamW(
        parameters,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
        fused=fused,
    )


def make_lr_scheduler(args, optimizer, num_training_steps: int):
    """
    diffusers' learning-rate schedule `--lr_scheduler` with `--lr_warmup_steps` over `num_training_steps` optimizer
    steps. Step it once per optimizer step (not through `accelerator.prepare`, which would step it once per process).
    """
    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps,
        num_training_steps=num_training_steps,
    )


def make_ema(args, parameters, device, foreach: bool = False) -> EMAModel | None:
    """The EMA of `parameters` the EMA flags describe (`add_ema_flags`), on `device`; None without `--use_ema`."""
    if not args.use_ema:
        return None
    ema_model = EMAModel(
        parameters,
        decay=args.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=args.ema_inv_gamma,
        power=args.ema_power,
        foreach=foreach,
    )
    ema_model.to(device)
    return ema_model
