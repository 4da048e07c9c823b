"""Conditional accuracy: do generated images show what was asked for, in a classifier's judgement."""

import torch


def single_label_accuracy(logits: torch.Tensor, requested: torch.Tensor) -> float:
    """Share of images whose most likely class (argmax of `logits`, (N, K)) is the requested id (N,)."""
    if logits.shape[0] != requested.shape[0]:
        raise ValueError(f"{logits.shape[0]} predictions for {requested.shape[0]} requested classes.")
    return float((logits.argmax(dim=1) == requested.to(logits.device)).double().mean())


def multi_label_accuracy(logits: torch.Tensor, requested: torch.Tensor) -> float:
    """
    i-CLEVR's rule: for each image with k requested labels (multi-hot `requested`, (N, L)), take the k labels the
    classifier scores highest and count how many were requested; accuracy = hits / requested labels, over all images.
    """
    if logits.shape != requested.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and requested {tuple(requested.shape)} must have one shape.")
    requested = requested.to(logits.device).bool()
    counts = requested.sum(dim=1)
    if (counts == 0).any():
        raise ValueError("Every image needs at least one requested label.")
    hits = 0
    for scores, wanted, k in zip(logits, requested, counts.tolist()):
        hits += int(wanted[scores.topk(k).indices].sum())
    return hits / int(counts.sum())


def multi_label_accuracy_by_count(logits: torch.Tensor, requested: torch.Tensor) -> dict[int, dict]:
    """
    `multi_label_accuracy` split by the number of labels requested per image: {k: {"accuracy", "images"}} for each k
    that occurs, in increasing order (i-CLEVR: scenes of 1, 2 and 3 objects).
    """
    if logits.shape != requested.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and requested {tuple(requested.shape)} must have one shape.")
    counts = requested.to(logits.device).bool().sum(dim=1)
    split = {}
    for count in sorted(set(counts.tolist())):
        rows = counts == count
        split[count] = {"accuracy": multi_label_accuracy(logits[rows], requested[rows.to(requested.device)]),
                        "images": int(rows.sum())}  # fmt: skip
    return split
