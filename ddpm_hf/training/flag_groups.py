"""
The flags the training scripts share, declared once in groups and checked where argparse reads them (`choices`, and
`number_in_range` types), on the command line and in `--config` files alike (`parse_args_with_config` puts file
values through the same types). Where diffusers' `train_unconditional.py` names a flag differently, its name is an
alias of ours (`--ddpm_num_steps` is `--num_train_timesteps`), and `--help` shows both.
"""

import argparse

from diffusers.optimization import SchedulerType

from ..data import RESIZE_MODES, HeldoutSettings
from ..schedulers import BETA_SCHEDULES, PREDICTION_TYPES
from .flag_types import number_in_range
from .loss import LOSS_WEIGHTINGS, MIN_SNR_GAMMA

# diffusers' learning-rate schedules; piecewise_constant needs step rules, which no flag gives
LR_SCHEDULERS = tuple(kind.value for kind in SchedulerType if kind is not SchedulerType.PIECEWISE_CONSTANT)
LOGGERS = ("tensorboard", "wandb", "none")
MAX_SEED = 2**32 - 1
# The diffusion flags' defaults (train_image.py takes a pretrained model's own values first).
DIFFUSION_DEFAULTS = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}

POSITIVE_INT = number_in_range(int, 1)
NON_NEGATIVE_INT = number_in_range(int, 0)
NON_NEGATIVE = number_in_range(float, 0)
POSITIVE = number_in_range(float, 0, exclusive_minimum=True)
UNIT_INTERVAL_OPEN = number_in_range(float, 0, 1, exclusive_minimum=True, exclusive_maximum=True)
ADAM_BETA = number_in_range(float, 0, 1, exclusive_maximum=True)


class FlagParser(argparse.ArgumentParser):
    """
    An `argparse.ArgumentParser` whose errors (an unknown flag, a value outside a flag's `choices` or range, a value
    of the wrong kind) raise a `ValueError` with argparse's message, which names the flag, the value and what is
    allowed, instead of exiting: flags are refused like any other bad input, before anything is written.
    """

    def error(self, message):
        raise ValueError(f"{message}.")


def add_run_flags(parser, max_seed: int = MAX_SEED) -> None:
    """`--config`, `--output_dir`, `--overwrite_output_dir` and `--seed` (check with `check_run_flags`)."""
    group = parser.add_argument_group("run")
    group.add_argument(
        "--config", type=str, default=None, help="YAML/JSON preset whose keys are flags; the command line wins."
    )
    group.add_argument("--output_dir", type=str, default=None, help="The run's folder (required).")
    group.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="Replace the folder of an earlier run (only a folder a run of this project marked; never the data).",
    )
    group.add_argument(
        "--seed",
        type=number_in_range(int, 0, max_seed),
        default=0,
        help="Seed of all the run draws: weights, data order, noise.",
    )


def check_run_flags(args) -> None:
    if args.output_dir is None:
        raise ValueError("--output_dir is required (on the command line or in --config).")


def add_image_data_flags(parser, resolution: int | None = None) -> None:
    """Where the images come from and their size (check with `check_image_data_flags`)."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="'digits', a .npz file, a local dataset folder, or a Hub dataset id (e.g. ylecun/mnist, cifar10).",
    )
    group.add_argument("--dataset_config_name", type=str, default=None, help="Config name of a Hub dataset.")
    group.add_argument(
        "--train_data_dir", type=str, default=None, help="Local images (class sub-folders = labels) or dataset files."
    )
    group.add_argument("--cache_dir", type=str, default=None, help="Cache folder for Hub datasets and models.")
    group.add_argument("--image_column", type=str, default=None, help="Image column; found automatically if unset.")
    group.add_argument("--label_column", type=str, default=None, help="Label column; found automatically if unset.")
    default_note = "the pretrained model's sample_size, else 32" if resolution is None else resolution
    group.add_argument(
        "--resolution", type=POSITIVE_INT, default=resolution, help=f"Image side in pixels (default: {default_note})."
    )
    group.add_argument(
        "--resize_mode",
        type=str,
        default="crop",
        choices=RESIZE_MODES,
        help="'crop': shorter side to --resolution, then a square crop; 'stretch': the whole image to the square "
        "(nothing cut off; for scenes whose labels name every object, such as i-CLEVR's).",
    )


def check_image_data_flags(args) -> None:
    if (args.dataset_name is None) == (args.train_data_dir is None):
        raise ValueError("Give exactly one of --dataset_name and --train_data_dir.")


def add_heldout_flags(parser) -> None:
    """The held-out noise loss and the best model (check with `check_heldout_flags`)."""
    group = parser.add_argument_group("held-out loss and best model")
    group.add_argument(
        "--validation_split",
        type=str,
        default="auto",
        help="The held-out images: a split of the training source (e.g. 'test'), 'none', or 'auto': its 'test' (else "
        "'validation') split when it has one (a Hub dataset, a save_to_disk DatasetDict, an image folder with train/ "
        "and test/ folders), else none. With a held-out set the held-out noise loss is scored every "
        "--validation_epochs and the best model kept in OUTPUT_DIR/best/.",
    )
    group.add_argument(
        "--validation_dataset_name",
        type=str,
        default=None,
        help="The held-out images from another source, in --dataset_name's forms (e.g. data/mnist/test.npz).",
    )
    group.add_argument(
        "--validation_fraction",
        type=number_in_range(float, 0, 1, exclusive_maximum=True),
        default=0.0,
        help="Hold out this fraction of the training images instead (stratified by class, drawn with --seed; they are "
        "not trained on). For sources without a test split, such as digits and .npz files.",
    )
    group.add_argument(
        "--validation_images",
        type=POSITIVE_INT,
        default=1000,
        help="Score at most this many held-out images (a seeded subset stratified by class): the cost of each score.",
    )
    group.add_argument(
        "--validation_epochs",
        type=POSITIVE_INT,
        default=1,
        help="Score the held-out loss every N epochs and at the end.",
    )


def check_heldout_flags(args) -> None:
    """The held-out flags that contradict each other, refused by name (`HeldoutSettings` checks them)."""
    HeldoutSettings.from_flags(args)


def add_diffusion_flags(parser, from_pretrained: bool = False) -> None:
    """
    The forward process, what the network predicts, the loss weighting and the sampling steps (check with
    `check_diffusion_flags`). With `from_pretrained` the defaults are None, for the script to fill in from a
    pretrained scheduler or `DIFFUSION_DEFAULTS`.
    """
    group = parser.add_argument_group("diffusion")

    def default(name):
        return None if from_pretrained else DIFFUSION_DEFAULTS[name]

    def note(name):
        value = DIFFUSION_DEFAULTS[name]
        return f"default: the pretrained scheduler's, else {value}" if from_pretrained else f"default {value}"

    group.add_argument(
        "--num_train_timesteps",
        "--ddpm_num_steps",
        type=POSITIVE_INT,
        default=default("num_train_timesteps"),
        help=f"Diffusion steps T ({note('num_train_timesteps')}).",
    )
    group.add_argument(
        "--beta_schedule",
        "--ddpm_beta_schedule",
        type=str,
        default=default("beta_schedule"),
        choices=BETA_SCHEDULES,
        help=f"Beta schedule; quad and cosine are diffusers' scaled_linear and squaredcos_cap_v2 "
        f"({note('beta_schedule')}).",
    )
    for name, which in (("beta_start", "First"), ("beta_end", "Last")):
        help_text = f"{which} beta of linear/quad schedules ({note(name)})."
        group.add_argument(f"--{name}", type=UNIT_INTERVAL_OPEN, default=default(name), help=help_text)
    group.add_argument(
        "--prediction_type",
        type=str,
        default=default("prediction_type"),
        choices=PREDICTION_TYPES,
        help=f"What the network predicts; x0 is diffusers' sample ({note('prediction_type')}).",
    )
    group.add_argument(
        "--loss_weighting",
        type=str,
        default="auto",
        choices=LOSS_WEIGHTINGS,
        help="'uniform' is MSE on the prediction target, 'epsilon' weights it into the MSE of the implied noise; "
        f"'min_snr' weights that noise MSE by min(SNR, {MIN_SNR_GAMMA:g}) / SNR per timestep "
        f"(Min-SNR-{MIN_SNR_GAMMA:g}, Hang et al. 2023); "
        "'auto' is 'epsilon' for --prediction_type mean and 'uniform' otherwise.",
    )
    group.add_argument(
        "--num_inference_steps",
        "--ddpm_num_inference_steps",
        type=POSITIVE_INT,
        default=None,
        help="DDPM steps when sampling the saved figures; default T (full DDPM).",
    )


def check_diffusion_flags(args) -> None:
    """The flags that depend on each other: at most T sampling steps."""
    if args.num_inference_steps is not None and args.num_inference_steps > args.num_train_timesteps:
        raise ValueError(
            f"--num_inference_steps must be in 1..{args.num_train_timesteps} (--num_train_timesteps), "
            f"got {args.num_inference_steps}."
        )


def add_optimizer_flags(
    parser,
    learning_rate: float = 1e-4,
    lr_scheduler: str = "cosine",
    lr_warmup_steps: int = 500,
    adam_beta1: float = 0.95,
    adam_beta2: float = 0.999,
    adam_weight_decay: float = 1e-6,
    adam_epsilon: float = 1e-8,
) -> None:
    """AdamW and its learning-rate schedule; the defaults are diffusers' `train_unconditional.py`'s."""
    group = parser.add_argument_group("optimiser")
    group.add_argument("--learning_rate", type=POSITIVE, default=learning_rate, help="Peak learning rate of AdamW.")
    group.add_argument(
        "--lr_scheduler", type=str, default=lr_scheduler, choices=LR_SCHEDULERS, help="Learning-rate schedule."
    )
    group.add_argument(
        "--lr_warmup_steps", type=NON_NEGATIVE_INT, default=lr_warmup_steps, help="Linear warm-up optimizer steps."
    )
    group.add_argument("--adam_beta1", type=ADAM_BETA, default=adam_beta1, help="AdamW beta1.")
    group.add_argument("--adam_beta2", type=ADAM_BETA, default=adam_beta2, help="AdamW beta2.")
    group.add_argument("--adam_weight_decay", type=NON_NEGATIVE, default=adam_weight_decay, help="AdamW weight decay.")
    group.add_argument("--adam_epsilon", type=NON_NEGATIVE, default=adam_epsilon, help="AdamW epsilon.")


def add_ema_flags(parser, ema_max_decay: float = 0.9999, ema_power: float = 3 / 4, ema_inv_gamma: float = 1.0) -> None:
    """The EMA of the weights that the saved pipeline holds; decay warms up as 1 - (1 + step / inv_gamma) ** -power."""
    group = parser.add_argument_group("EMA")
    group.add_argument(
        "--use_ema", action=argparse.BooleanOptionalAction, default=True, help="Keep (and save) an EMA of the weights."
    )
    group.add_argument("--ema_inv_gamma", type=POSITIVE, default=ema_inv_gamma, help="EMA warm-up inverse gamma.")
    group.add_argument("--ema_power", type=POSITIVE, default=ema_power, help="EMA warm-up power.")
    group.add_argument(
        "--ema_max_decay", type=number_in_range(float, 0, 1), default=ema_max_decay, help="Largest EMA decay."
    )


def add_saving_flags(parser) -> None:
    """Checkpoints, sample grids, pipeline saves during training, and the Hub upload."""
    group = parser.add_argument_group("saving and Hub")
    group.add_argument(
        "--checkpointing_steps",
        type=POSITIVE_INT,
        default=500,
        help="Save a checkpoint every N optimizer steps (and at the last), in OUTPUT_DIR/checkpoints/checkpoint-N.",
    )
    group.add_argument("--checkpoints_total_limit", type=POSITIVE_INT, default=2, help="Keep at most N checkpoints.")
    resume_help = (
        "'latest', or this run's checkpoint-N, its path, or diffusers' naming of it, OUTPUT_DIR/checkpoint-N."
    )
    group.add_argument("--resume_from_checkpoint", type=str, default=None, help=resume_help)
    group.add_argument("--save_images_epochs", type=POSITIVE_INT, default=10, help="A sample grid every N epochs.")
    group.add_argument(
        "--save_model_epochs",
        type=POSITIVE_INT,
        default=None,
        help="Also save the loadable pipeline (and model card) into --output_dir every N epochs, and push it with "
        "--push_to_hub; default: only at the end.",
    )
    group.add_argument(
        "--push_to_hub", action="store_true", help="Upload the pipeline to the Hub (at the end, and at each save)."
    )
    group.add_argument(
        "--hub_model_id", type=str, default=None, help="Hub repository; default: the name of --output_dir."
    )
    group.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    group.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    group.add_argument("--hub_license", type=str, default="apache-2.0", help="License id written in the model card.")


def add_tracker_flags(parser) -> None:
    """Where the losses and the sample grids are logged."""
    group = parser.add_argument_group("trackers")
    group.add_argument(
        "--logger",
        type=str,
        default="tensorboard",
        choices=LOGGERS,
        help="Where the losses and the sample grids go (wandb: pip install wandb).",
    )
    group.add_argument(
        "--logging_dir", type=str, default="logs", help="Tracker folder, relative to --output_dir (default logs)."
    )


def check_tracker_flags(args) -> None:
    if args.logger == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError as error:
            raise ImportError(
                '--logger wandb needs wandb: pip install "ddpm-hf[wandb]" (or pip install wandb).'
            ) from error
