"""The scoring of train_scripts/evaluate.py: the data split into a reference half A and a floor half B, the reference
features (cached), the real-vs-real floor, the scores of one result row, the check that a model or judge has the
data's classes, and the generated images kept for scoring again (samples.npz)."""

import numpy as np
import torch

from .accuracy import multi_label_accuracy, multi_label_accuracy_by_count, single_label_accuracy
from .fid import extract_features, frechet_distance, inception_score, kernel_distance
from .reference_cache import cached_tensors


def split_halves(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of `count` images into two disjoint halves (A: the reference, B: the floor), by `seed`."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[: count // 2], order[count // 2 :]


def repeat_to(requested: torch.Tensor, count: int) -> torch.Tensor:
    """`requested` (class ids (N,) or multi-hot rows (N, K)) repeated in turn to `count` entries."""
    repeats = count // len(requested) + 1
    return requested.repeat(repeats, *[1] * (requested.ndim - 1))[:count]


def accuracy(logits: torch.Tensor, requested: torch.Tensor) -> float:
    """The share of images the judge's `logits` classify as `requested` (class ids, or multi-hot rows)."""
    return (multi_label_accuracy if requested.ndim == 2 else single_label_accuracy)(logits, requested)


def reference_features(feature_network, images, half_a, half_b, key: dict, cache_dir: str | None = None):
    """
    The features of halves A and B and the logits of B under `feature_network`, from the cache when an evaluation
    with the same `key` (dataset, split, resolution, network, ...) stored them. Returns (tensors, whether cached).
    """
    entries = ["features_a", "features_b", "logits_b"]

    def compute():
        features_b, logits_b = extract_features(feature_network, images[half_b])
        features_a = extract_features(feature_network, images[half_a])[0]
        return dict(zip(entries, (features_a, features_b, logits_b)))

    return cached_tensors({**key, "entries": entries}, compute, cache_dir)


def real_floor(reference: dict, judge_logits_b: torch.Tensor | None, labels_b: torch.Tensor | None) -> dict:
    """The scores of real half B against real half A, the best a model can hope for: FID, KID, IS, and the judge's
    accuracy on B's own labels (None without a judge or labels)."""
    features_a, features_b = reference["features_a"], reference["features_b"]
    return {
        "fid": frechet_distance(features_a, features_b),
        "kid": kernel_distance(features_a, features_b)[0],
        "inception_score": inception_score(reference["logits_b"])[0],
        "accuracy": accuracy(judge_logits_b, labels_b) if judge_logits_b is not None else None,
    }


def score_samples(features_a, features, logits, judge_logits=None, requested=None) -> dict:
    """
    The scores of generated images against reference half A: FID, KID (mean and std over subsets) and IS from the
    feature network's `features` and `logits`; with a judge's logits and the requested labels, the accuracy, and for
    multi-hot conditions the accuracy by number of labels asked for (scenes of 1, 2, 3 objects).
    """
    kid_mean, kid_std = kernel_distance(features_a, features)
    judged = judge_logits is not None
    return {
        "fid": frechet_distance(features_a, features),
        "kid": kid_mean,
        "kid_std": kid_std,
        "inception_score": inception_score(logits)[0],
        "accuracy": accuracy(judge_logits, requested) if judged else None,
        "accuracy_by_label_count": multi_label_accuracy_by_count(judge_logits, requested)
        if judged and requested.ndim == 2
        else None,
    }


def short_list(names) -> str:
    """A list of class names for a message: all of them up to 10, else the first 10 and the count."""
    names = list(names)
    return str(names) if len(names) <= 10 else f"{names[:10]} ... ({len(names)} in all)"


def is_default_names(names) -> bool:
    """Whether class names are just the ids as strings (what data or a model without names gets)."""
    return list(names) == [str(index) for index in range(len(names))]


def check_classes(source: str, num_classes: int, multi_label: bool, names, labels, class_names, dataset: str):
    """Refuse a model or judge whose classes are not the data's (count, single/multi-label, names where both have
    real names): its class ids would mean other classes than the data's labels."""
    data_kind = "multi-label" if labels.ndim == 2 else "single-label"
    kind = "multi-label" if multi_label else "single-label"
    if kind != data_kind:
        raise ValueError(
            f"{source} is {kind} and the dataset {dataset!r} is {data_kind}; evaluate it on its own data."
        )
    if num_classes != len(class_names):
        raise ValueError(
            f"The dataset {dataset!r} has {len(class_names)} classes {short_list(class_names)} and {source} has "
            f"{num_classes}{'' if names is None else ' ' + short_list(names)}; give the data the model was trained on."
        )
    if names is not None and list(names) != list(class_names):
        if not (is_default_names(names) or is_default_names(class_names)):
            raise ValueError(
                f"The dataset {dataset!r} has the classes {short_list(class_names)} and {source} has "
                f"{short_list(names)}; the same ids would mean other classes."
            )


def check_data_matches(
    pipes: dict,
    judge,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    class_names: list[str],
    dataset: str,
    split: str,
    judge_path: str | None = None,
    conditions: str | None = None,
    min_images: int = 4,
) -> None:
    """
    Everything the evaluation compares must agree before anything is sampled: enough images for two halves, the
    pipelines' and the judge's channels and classes against the data's, and --conditions only for multi-label data.

    Args:
        pipes (`dict`): The pipelines by the folder or Hub id they were loaded from.
        judge (`ImageClassifier`, *optional*): The classifier that judges accuracy, loaded from `judge_path`.
        images, labels, class_names: The data of split `split` of `dataset`, as `load_image_tensors` returns them.
        conditions (`str`, *optional*): The file of conditions to generate for, instead of the data's labels.
        min_images (`int`, defaults to 4): The fewest images two halves of two images each can be made of.
    """
    if conditions is not None and (labels is None or labels.ndim != 2):
        raise ValueError(f"--conditions is for multi-label data; {dataset!r} has one label per image or none.")
    if len(images) < min_images:
        raise ValueError(
            f"The dataset {dataset!r} (split {split!r}) holds {len(images)} image(s); at least {min_images} are "
            "needed to split it into two halves of 2 or more (reference and floor)."
        )
    channels = images.shape[1]
    for path, pipe in pipes.items():
        if pipe.unet.config.in_channels != channels:
            raise ValueError(
                f"The dataset {dataset!r} has {channels}-channel images and the pipeline {path!r} makes "
                f"{pipe.unet.config.in_channels}-channel images; evaluate a model on data of its own kind."
            )
        if pipe.num_classes is not None and labels is not None:
            stored_names = list(pipe.id2label.values()) if pipe.config.get("id2label") else None
            check_classes(f"the pipeline {path!r}", pipe.num_classes, pipe.is_multi_label, stored_names, labels,
                          class_names, dataset)  # fmt: skip
    if judge is not None:
        if judge.config.in_channels != channels:
            raise ValueError(
                f"The dataset {dataset!r} has {channels}-channel images and the classifier {judge_path!r} takes "
                f"{judge.config.in_channels}-channel images."
            )
        if labels is not None:
            check_classes(f"the classifier {judge_path!r}", judge.config.num_labels, judge.config.multi_label,
                          judge.config.label_names, labels, class_names, dataset)  # fmt: skip


def keep_samples(saved: dict, generated: torch.Tensor, requested, omega: float | None, row: int) -> None:
    """Add one result row's images in [0, 1] to `saved` (lists under images, labels, omega, row) as uint8 (N, H, W) or
    (N, H, W, C), with their labels (class ids, or multi-hot rows; -1 where unconditional), omega (NaN where no
    guidance applied) and 0-based row in eval.json."""
    pixels = (generated * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    saved["images"].append(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    labels = np.full(len(generated), -1) if requested is None else requested[: len(generated)].cpu().numpy()
    saved["labels"].append(labels)
    saved["omega"].append(np.full(len(generated), np.nan if omega is None else omega, dtype=np.float32))
    saved["row"].append(np.full(len(generated), row))


def save_samples(saved: dict, path: str) -> None:
    """The kept images as one .npz of uint8 `images`, `labels`, `omega` and `row`, an entry per image. Multi-hot rows
    beside unconditional ones: those become rows of -1."""
    width = max((labels.shape[1] for labels in saved["labels"] if labels.ndim == 2), default=None)
    if width is not None:
        saved["labels"] = [np.full((len(x), width), -1) if x.ndim == 1 else x for x in saved["labels"]]
    np.savez_compressed(path, **{name: np.concatenate(parts) for name, parts in saved.items()})
