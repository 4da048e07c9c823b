"""Train the project's image classifier: the judge of conditional samples and the feature network of offline FID.

    accelerate launch train_scripts/train_classifier.py --dataset_name digits --resolution 8 \
        --output_dir outputs/digits_classifier

Holds out --validation_fraction of the data (stratified by class), trains a small CNN (`ImageClassifier`) with
AdamW and light augmentation (random shifts; random Gaussian blur with --max_blur), and writes to --output_dir the
model (`config.json` and safetensors weights, loadable with `ImageClassifier.from_pretrained`) and `metrics.json` with
the held-out accuracy. Multi-label data (an i-CLEVR folder: objects.json, train.json, images) trains sigmoid outputs
with binary cross-entropy and is scored by i-CLEVR's rule (top-k labels, k = number of true labels).
"""

import json
import math
import os
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ddpm_hf.data import load_image_tensors
from ddpm_hf.metrics import multi_label_accuracy, single_label_accuracy
from ddpm_hf.models import ImageClassifier
from ddpm_hf.training import (
    check_output_dir,
    number_in_range,
    parse_args_with_config,
    staged_output_dir,
)
from ddpm_hf.training import flag_groups as flags


def build_parser():
    parser = flags.FlagParser(description="Train an image classifier (judge and feature network).")
    flags.add_run_flags(parser)
    flags.add_image_data_flags(parser, resolution=32)
    parser.add_argument(
        "--validation_fraction",
        type=flags.UNIT_INTERVAL_OPEN,
        default=0.2,
        help="Share held out for accuracy.",
    )
    parser.add_argument("--block_channels", type=int, nargs="+", default=[32, 64, 128], help="Width per level.")
    parser.add_argument(
        "--feature_dim", type=flags.POSITIVE_INT, default=128, help="Size of the feature vector (FID)."
    )
    pooling_help = "Feature pooling; default 'mean', or 'mean_max' for multi-label data (small objects)."
    parser.add_argument("--pooling", type=str, default=None, choices=["mean", "mean_max"], help=pooling_help)
    parser.add_argument("--train_batch_size", type=flags.POSITIVE_INT, default=128, help="Batch size.")
    parser.add_argument("--num_epochs", type=flags.POSITIVE_INT, default=30, help="Passes over the training part.")
    parser.add_argument(
        "--learning_rate",
        type=flags.POSITIVE,
        default=2e-3,
        help="AdamW learning rate (cosine decay).",
    )
    parser.add_argument("--weight_decay", type=flags.NON_NEGATIVE, default=1e-4, help="AdamW weight decay.")
    parser.add_argument(
        "--max_shift", type=int, default=1, help="Random shift augmentation, in pixels (0: none; below --resolution)."
    )
    parser.add_argument(
        "--max_blur",
        type=number_in_range(float, 0, 3),
        default=0.0,
        help="Gaussian blur augmentation: each training image is blurred with a sigma drawn uniformly from "
        "[0, max_blur] pixels (0: none). About 1 makes a judge of generated images blind to their slight softness.",
    )
    parser.add_argument(
        "--test_dataset_name",
        type=str,
        default=None,
        help="Also score the trained classifier on this dataset (a .npz, a folder or a Hub id, e.g. MNIST's test.npz "
        "or ylecun/mnist) and write its accuracy to metrics.json as test_accuracy.",
    )
    parser.add_argument("--test_split", type=str, default="test", help="Split of --test_dataset_name to score.")
    return parser


def parse_args(argv=None):
    args = parse_args_with_config(build_parser(), argv)
    flags.check_run_flags(args)
    flags.check_image_data_flags(args)
    groups = ImageClassifier.norm_groups
    if any(width < 1 or width % groups for width in args.block_channels):
        raise ValueError(
            f"--block_channels must be positive multiples of {groups} (the classifier's GroupNorm groups), got "
            f"{args.block_channels}."
        )
    if not 0 <= args.max_shift < args.resolution:
        raise ValueError(
            f"--max_shift must be in [0, {args.resolution - 1}] pixels (0: no shift; below --resolution "
            f"{args.resolution}), got {args.max_shift}."
        )
    check_output_dir(args.output_dir, args.overwrite_output_dir, data_paths(args))
    return args


def data_paths(args):
    """The local data the run reads, which its output_dir must stay apart from (Hub ids and built-ins are skipped)."""
    return (args.train_data_dir, args.dataset_name, args.test_dataset_name, args.cache_dir)


def stratified_split(labels: torch.Tensor, fraction: float, generator: torch.Generator):
    """Indices (train, validation): `fraction` of every class (at least one image) goes to validation."""
    train, validation = [], []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
        validation.append(members[:count])
        train.append(members[count:])
    return torch.cat(train), torch.cat(validation)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels in x and y (edge padding)."""
    if max_shift == 0:
        return images
    padded = torch.nn.functional.pad(images, [max_shift] * 4, mode="replicate")
    size = images.shape[-1]
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())])


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """Blur image i with a separable Gaussian of standard deviation `sigmas[i]` pixels, taps -radius..radius,
    edge padding; a sigma of 0 leaves the image as it is."""
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernels = torch.exp(-(taps**2) / (2 * sigmas.to(images.dtype).clamp_min(1e-3)[:, None] ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)  # (N, taps)
    count, channels, height, width = images.shape
    kernels = kernels.repeat_interleave(channels, dim=0)  # one kernel per (image, channel) plane
    planes = images.reshape(1, count * channels, height, width)
    planes = torch.nn.functional.pad(planes, [radius, radius, 0, 0], mode="replicate")
    planes = torch.nn.functional.conv2d(planes, kernels[:, None, None, :], groups=count * channels)
    planes = torch.nn.functional.pad(planes, [0, 0, radius, radius], mode="replicate")
    planes = torch.nn.functional.conv2d(planes, kernels[:, None, :, None], groups=count * channels)
    return planes.reshape(count, channels, height, width)


def random_blur(images: torch.Tensor, max_blur: float, generator: torch.Generator) -> torch.Tensor:
    """Blur each image with a sigma drawn uniformly from [0, max_blur] pixels."""
    if max_blur == 0:
        return images
    sigmas = torch.rand(len(images), generator=generator) * max_blur
    return gaussian_blur(images, sigmas, radius=math.ceil(3 * max_blur))


def load_test_split(args, class_names, channels):
    """(images, labels) of --test_dataset_name, whose classes must be the training data's, in the same order."""
    images, labels, test_names = load_image_tensors(
        args.test_dataset_name, None, args.resolution, mode="L" if channels == 1 else "RGB",
        image_column=args.image_column, label_column=args.label_column,
        split=args.test_split, dataset_config_name=args.dataset_config_name, resize_mode=args.resize_mode,
        cache_dir=args.cache_dir,
    )  # fmt: skip
    if labels is None or test_names != class_names:
        raise ValueError(
            f"--test_dataset_name {args.test_dataset_name!r} must have the training data's classes {class_names}, "
            f"got {test_names}."
        )
    return images, labels


@torch.no_grad()
def accuracy(model, images, labels, batch_size=512):
    """Share of images classified right; for multi-hot labels, i-CLEVR's top-k rule."""
    model.eval()
    logits = torch.cat(
        [model(images[i : i + batch_size].to(model.device)).cpu() for i in range(0, len(images), batch_size)]
    )
    return multi_label_accuracy(logits, labels) if labels.ndim == 2 else single_label_accuracy(logits, labels)


def main(args):
    images, labels, class_names = load_image_tensors(
        args.dataset_name, args.train_data_dir, args.resolution, image_column=args.image_column,
        label_column=args.label_column, dataset_config_name=args.dataset_config_name, resize_mode=args.resize_mode,
        progress=True, cache_dir=args.cache_dir,
    )  # fmt: skip
    if labels is None:
        raise ValueError(
            f"The dataset {args.dataset_name or args.train_data_dir!r} has no label column, and a classifier needs "
            "labels: name the column with --label_column. (To score a model of unlabelled images, use "
            "train_scripts/evaluate.py --inception, which needs no classifier.)"
        )
    test = load_test_split(args, class_names, images.shape[1]) if args.test_dataset_name else None
    multi_label = labels.ndim == 2  # multi-hot rows: i-CLEVR-style data, 1+ labels per image
    accelerator = Accelerator()
    set_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    if multi_label:
        order = torch.randperm(len(labels), generator=generator)
        count = max(1, round(len(labels) * args.validation_fraction))
        train_index, validation_index = order[count:], order[:count]
    else:
        train_index, validation_index = stratified_split(labels, args.validation_fraction, generator)
    model = ImageClassifier(
        in_channels=images.shape[1], resolution=args.resolution, num_labels=len(class_names),
        multi_label=multi_label, block_channels=tuple(args.block_channels), feature_dim=args.feature_dim,
        label_names=class_names, pooling=args.pooling or ("mean_max" if multi_label else "mean"),
    )  # fmt: skip
    loss_function = (
        torch.nn.functional.binary_cross_entropy_with_logits if multi_label else torch.nn.functional.cross_entropy
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_index) / args.train_batch_size)
    lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.num_epochs * steps_per_epoch)
    model, optimizer = accelerator.prepare(model, optimizer)

    start = time.time()
    progress = tqdm(range(args.num_epochs * steps_per_epoch), desc="train", disable=not accelerator.is_main_process)
    for _ in range(args.num_epochs):
        model.train()
        order = train_index[torch.randperm(len(train_index), generator=generator)]
        for first in range(0, len(order), args.train_batch_size):
            batch = order[first : first + args.train_batch_size]
            inputs = random_blur(random_shift(images[batch], args.max_shift, generator), args.max_blur, generator)
            inputs = inputs.to(accelerator.device)
            loss = loss_function(model(inputs), labels[batch].to(accelerator.device))
            accelerator.backward(loss)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}")
    progress.close()

    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        metrics = {
            "validation_accuracy": accuracy(model, images[validation_index], labels[validation_index]),
            "train_accuracy": accuracy(model, images[train_index], labels[train_index]),
            "num_train": len(train_index),
            "num_validation": len(validation_index),
            "class_names": class_names,
            **({"test_accuracy": accuracy(model, *test), "num_test": len(test[1])} if test else {}),
            "max_shift": args.max_shift,
            "max_blur": args.max_blur,
            "train_seconds": round(time.time() - start, 1),
        }
        # written beside output_dir and moved into place whole, holding output_dir against other writers
        with staged_output_dir(args.output_dir, args.overwrite_output_dir, data_paths(args)) as staging:
            model.save_pretrained(staging)
            with open(os.path.join(staging, "metrics.json"), "w") as f:
                json.dump(metrics, f, indent=2)
        print(f"validation accuracy {metrics['validation_accuracy']:.4f} on {len(validation_index)} held-out images")
        if test:
            print(f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['num_test']} images")
        return metrics


if __name__ == "__main__":
    main(parse_args())
