"""What the U-Net is conditioned on: class labels given by id or name turned into its condition tensor.

A class-conditional U-Net (`num_class_embeds = K + 1`) takes class ids, with id K as the null condition of
classifier-free guidance; a multi-label U-Net (`num_labels = K`) takes multi-hot rows, with the all-zero row as the
null condition. This file imports only torch and numpy, so that it can travel with a saved model.
"""

import numpy as np
import torch

from .input_checks import is_integer, short_repr


def check_class_names(names, source: str) -> None:
    """
    Refuse class names that cannot each be picked by name: a name that is not text, an empty or whitespace-only one
    (it would read as no class at all), or one given to two classes (it would pick only one of them).

    Args:
        names (`list`): Class names in id order.
        source (`str`): Where the names come from, for the message (e.g. "id2label of this pipeline").
    """
    first_id = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(f"{source}: the name of class {index} is {short_repr(name)}; class names are text.")
        if not name.strip():
            raise ValueError(
                f"{source}: the name of class {index} is {name!r}; each class needs a name that is not empty or only "
                "spaces (an empty name reads as no class)."
            )
        if name in first_id:
            raise ValueError(
                f"{source}: the name {short_repr(name)} is given to classes {first_id[name]} and {index}; each class "
                "needs its own name."
            )
        first_id[name] = index


def describe_classes(num_classes: int | None, multi_label: bool) -> str:
    """What a U-Net takes, in words, with the config value it comes from."""
    if num_classes is None:
        return "an unconditional U-Net (num_class_embeds is None)"
    if multi_label:
        return f"a U-Net of {num_classes} labels (num_labels = {num_classes})"
    return f"a U-Net of {num_classes} classes (num_class_embeds = {num_classes + 1}: the classes and the null class)"


def check_id2label(id2label, num_classes: int | None, multi_label: bool) -> dict[int, str] | None:
    """
    `id2label` (class names by id, as model_index.json stores them: keys may be digit strings) checked against the
    U-Net it names: ids exactly 0..K-1 for a U-Net of K classes (or labels), each name text that is not empty and
    given once; none for an unconditional U-Net. Returns the names by int id, or None when none are given.

    Args:
        id2label (`dict`, *optional*): Class names by id.
        num_classes (`int`, *optional*): K, from the U-Net's config; None for an unconditional U-Net.
        multi_label (`bool`): Whether the U-Net takes multi-hot conditions.
    """
    if not id2label:
        return None
    if not isinstance(id2label, dict):
        raise ValueError(f"id2label must map class ids to names, got {type(id2label).__name__}.")
    unet = describe_classes(num_classes, multi_label)
    if num_classes is None:
        raise ValueError(f"id2label names {len(id2label)} class(es), but this is {unet}; give no id2label for it.")
    names_by_id = {}
    for key, name in id2label.items():
        text = str(key)
        if isinstance(key, bool) or not (is_integer(key) or (isinstance(key, str) and text.isdigit())):
            raise ValueError(f"id2label key {short_repr(key)} is not a class id; ids are 0..{num_classes - 1}.")
        if int(key) in names_by_id:
            raise ValueError(f"id2label gives id {int(key)} twice (key {short_repr(key)}); give each id once.")
        names_by_id[int(key)] = name
    missing = sorted(set(range(num_classes)) - set(names_by_id))
    extra = sorted(set(names_by_id) - set(range(num_classes)))
    if missing or extra:
        problems = ([f"no name for id(s) {missing[:10]}"] if missing else []) + (
            [f"names for id(s) {extra[:10]} that do not exist"] if extra else []
        )
        raise ValueError(
            f"id2label holds {len(names_by_id)} name(s) and this is {unet}: {' and '.join(problems)}. Give one name "
            f"for each id 0..{num_classes - 1}."
        )
    names = [names_by_id[index] for index in range(num_classes)]
    check_class_names(names, "id2label")
    return {index: str(name) for index, name in enumerate(names)}  # numpy strings become plain ones


def null_conditions(batch_size: int, num_classes: int, multi_label: bool) -> torch.Tensor:
    """The null condition of classifier-free guidance for `batch_size` images: class id K, or an all-zero row."""
    if multi_label:
        return torch.zeros((batch_size, num_classes))
    return torch.full((batch_size,), num_classes, dtype=torch.long)


def _label_id(value, label2id: dict[str, int], num_classes: int) -> int:
    """One class (or label) given by name or id, as its id."""
    if isinstance(value, str) and value in label2id:
        return label2id[value]
    if is_integer(value) and 0 <= value < num_classes:
        return int(value)
    raise ValueError(
        f"Unknown class {short_repr(value)}; valid ids are 0..{num_classes - 1} and valid names are {list(label2id)}."
    )


def encode_class_labels(
    class_labels, batch_size: int, id2label: dict[int, str], num_classes: int | None, multi_label: bool
) -> torch.Tensor | None:
    """
    The U-Net's condition for `class_labels`, checked.

    Args:
        class_labels: Class ids or names, one for the batch or one per image (a list, tuple, array or tensor); for a
            multi-label model one list of label names or ids per image, or a multi-hot array (N, K). None: no
            condition.
        batch_size (`int`): The number of images.
        id2label (`dict[int, str]`): Class names by id.
        num_classes (`int`, *optional*): K; None for an unconditional model.
        multi_label (`bool`): Whether the model takes multi-hot conditions.

    Returns:
        `torch.Tensor` or None: class ids (batch_size,) of dtype long, or multi-hot rows (batch_size, K).
    """
    if class_labels is None:
        return None
    if num_classes is None:
        raise ValueError(
            "This model is unconditional (its U-Net has no class embedding); call it without class_labels."
        )
    label2id = {name: index for index, name in id2label.items()}
    if multi_label:
        return _multi_hot(class_labels, batch_size, label2id, num_classes)
    values = class_labels.tolist() if isinstance(class_labels, (torch.Tensor, np.ndarray)) else class_labels
    if isinstance(values, str) or is_integer(values):
        values = [values] * batch_size
    if not isinstance(values, (list, tuple)):
        raise ValueError(
            f"class_labels must be a class id, a class name, or a list or tensor of them; got "
            f"{type(class_labels).__name__}."
        )
    if len(values) != batch_size:
        raise ValueError(f"Got {len(values)} class_labels for batch_size {batch_size}; give one or {batch_size}.")
    return torch.tensor([_label_id(value, label2id, num_classes) for value in values], dtype=torch.long)


def _multi_hot(class_labels, batch_size: int, label2id: dict[str, int], num_classes: int) -> torch.Tensor:
    """Conditions of a multi-label model (a list of label lists, or a multi-hot array) as a multi-hot tensor."""
    example = f"e.g. [{list(label2id)[:2]}] for one image"
    if isinstance(class_labels, (torch.Tensor, np.ndarray)):
        multi_hot = torch.as_tensor(class_labels).float()
        if multi_hot.ndim != 2 or multi_hot.shape[1] != num_classes or not ((multi_hot == 0) | (multi_hot == 1)).all():
            raise ValueError(
                f"A multi-hot class_labels tensor must have shape (batch_size, {num_classes}) and hold only 0 and 1; "
                f"got shape {tuple(multi_hot.shape)}."
            )
    else:
        if not isinstance(class_labels, (list, tuple)) or not all(
            isinstance(condition, (list, tuple)) for condition in class_labels
        ):
            raise ValueError(
                f"This model is multi-label: class_labels must be a list with one list of label names or ids per "
                f"image ({example}), or a multi-hot tensor; got {type(class_labels).__name__}."
            )
        multi_hot = torch.zeros((len(class_labels), num_classes))
        for row, condition in enumerate(class_labels):
            ids = [_label_id(value, label2id, num_classes) for value in condition]
            if not ids or len(set(ids)) != len(ids):
                raise ValueError(
                    f"Condition {row} {short_repr(list(condition))} must name 1 or more labels, each once ({example})."
                )
            multi_hot[row, ids] = 1
    if len(multi_hot) == 1:
        multi_hot = multi_hot.expand(batch_size, -1)
    if len(multi_hot) != batch_size:
        raise ValueError(f"Got {len(multi_hot)} conditions for batch_size {batch_size}; give one or {batch_size}.")
    return multi_hot
