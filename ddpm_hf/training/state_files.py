"""State dicts saved without pickle: tensors in a safetensors file, everything else in a JSON file beside it."""

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

STATE_FILES_FORMAT = 1
TENSOR_TAG = "$tensor"  # a JSON object {"$tensor": key} stands for the tensor stored under `key`


def _encode(value, path: str, tensors: dict, state_name: str):
    if isinstance(value, torch.Tensor):
        key = path or "value"
        if key in tensors:
            key = f"{key}#{len(tensors)}"
        # a copy on the CPU: safetensors refuses tensors that share storage, and state_dict() returns live references
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {TENSOR_TAG: key}
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str) or key == TENSOR_TAG:
                raise TypeError(f"State {state_name!r}: key {key!r} at {path or 'the top'} cannot be saved as JSON.")
            encoded[key] = _encode(item, f"{path}.{key}" if path else key, tensors, state_name)
        return encoded
    if isinstance(value, (list, tuple)):
        return [
            _encode(item, f"{path}.{index}" if path else str(index), tensors, state_name)
            for index, item in enumerate(value)
        ]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"State {state_name!r}: {path or 'the value'} is of type {type(value).__name__}, which cannot be saved "
        "without pickle."
    )


def save_state_files(state_dict: dict, folder: str, name: str) -> list[str]:
    """
    Write `state_dict` as `{name}.json` (its structure and plain values) and, when it holds tensors,
    `{name}.safetensors`, in `folder`. Lists and tuples are saved as lists.

    Raises:
        `TypeError`: For a value that is not a tensor, dict (with string keys), list, tuple, bool, int, float, str or
            None, naming where it is.

    Returns:
        `list[str]`: The paths written.
    """
    tensors = {}
    tree = _encode(state_dict, "", tensors, name)
    os.makedirs(folder, exist_ok=True)
    written = []
    tensors_file = None
    if tensors:
        tensors_file = f"{name}.safetensors"
        save_file(tensors, os.path.join(folder, tensors_file))
        written.append(os.path.join(folder, tensors_file))
    with open(os.path.join(folder, f"{name}.json"), "w") as f:
        json.dump({"format": STATE_FILES_FORMAT, "tensors_file": tensors_file, "state": tree}, f)
    written.append(os.path.join(folder, f"{name}.json"))
    return written


def _tensor_keys(tree, found: list) -> list:
    if isinstance(tree, dict):
        if set(tree) == {TENSOR_TAG}:
            found.append(tree[TENSOR_TAG])
        else:
            for item in tree.values():
                _tensor_keys(item, found)
    elif isinstance(tree, list):
        for item in tree:
            _tensor_keys(item, found)
    return found


def read_state_json(folder: str, name: str) -> dict:
    """The parsed `{name}.json` of `folder`, checked to be of this format and to find its tensors in the safetensors
    file it names (the header only is read). Raises `ValueError` naming the file and what is wrong."""
    path = os.path.join(folder, f"{name}.json")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: cannot be read as JSON ({error})") from None
    if not isinstance(content, dict) or content.get("format") != STATE_FILES_FORMAT or "state" not in content:
        raise ValueError(f"{path}: not a state file of format {STATE_FILES_FORMAT}")
    wanted = _tensor_keys(content["state"], [])
    if wanted:
        tensors_path = os.path.join(folder, str(content.get("tensors_file")))
        try:
            with safe_open(tensors_path, framework="pt") as f:
                stored = set(f.keys())
        except Exception as error:  # safetensors raises its own error type for a damaged header
            raise ValueError(f"{tensors_path}: cannot be read as safetensors ({error})") from None
        missing = [key for key in wanted if key not in stored]
        if missing:
            raise ValueError(f"{tensors_path}: lacks the tensors {missing[:5]} that {name}.json refers to")
    return content


def _decode(tree, tensors, like, path: str, state_name: str):
    if isinstance(tree, dict) and set(tree) == {TENSOR_TAG}:
        tensor = tensors[tree[TENSOR_TAG]]
        if isinstance(like, torch.Tensor):
            if tensor.shape != like.shape:
                raise ValueError(
                    f"State {state_name!r}: {path} has shape {tuple(tensor.shape)} in the checkpoint and "
                    f"{tuple(like.shape)} in this run; resume with the settings the checkpoint was saved with."
                )
            tensor = tensor.to(like.device)  # e.g. EMA weights back on the GPU, where they are updated
        return tensor
    if isinstance(tree, dict):
        like = like if isinstance(like, dict) else {}
        return {
            key: _decode(item, tensors, like.get(key), f"{path}.{key}" if path else key, state_name)
            for key, item in tree.items()
        }
    if isinstance(tree, list):
        like = like if isinstance(like, (list, tuple)) else []
        if like and len(like) != len(tree):
            raise ValueError(
                f"State {state_name!r}: {path} holds {len(tree)} items in the checkpoint and {len(like)} in this run; "
                "resume with the settings the checkpoint was saved with."
            )
        return [
            _decode(item, tensors, like[index] if index < len(like) else None, f"{path}.{index}", state_name)
            for index, item in enumerate(tree)
        ]
    return tree


def load_state_files(folder: str, name: str, like: dict | None = None) -> dict:
    """
    Read the state saved by `save_state_files(state_dict, folder, name)`. Nothing is unpickled.

    Args:
        folder (`str`): The folder holding `{name}.json` (and `{name}.safetensors`).
        name (`str`): The state's name.
        like (`dict`, *optional*): The current state of the object it is loaded into (its `state_dict()`): each
            loaded tensor must have the shape of the tensor it replaces there, and is put on that tensor's device.

    Raises:
        `ValueError`: For a damaged or missing file, or a tensor whose shape differs from `like`'s.
    """
    content = read_state_json(folder, name)
    tensors = {}
    if content.get("tensors_file"):
        path = os.path.join(folder, content["tensors_file"])
        with safe_open(path, framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    return _decode(content["state"], tensors, like, "", name)
