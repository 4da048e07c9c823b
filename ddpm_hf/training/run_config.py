"""A run's settings in its folder (run_config.json): written when it starts, compared when it is resumed."""

import json
import logging
import os

RUN_CONFIG = "run_config.json"

logger = logging.getLogger(__name__)


def write_run_config(run_dir: str, settings: dict) -> None:
    """Record `settings` (flag name -> value; leave secrets such as a Hub token out) in `run_dir`."""
    with open(os.path.join(run_dir, RUN_CONFIG), "w") as f:
        json.dump(settings, f, indent=2)


def check_resume_settings(run_dir: str, settings: dict, changeable, length_keys=("max_train_steps", "num_epochs")):
    """
    Resuming the run in `run_dir`: refuse `settings` that differ from those it was started with (its run_config.json),
    except the names in `changeable` (how long it trains, and how it is saved, logged, shown or sped up), which are
    applied and recorded anew; a changed length is logged, since the learning-rate schedule follows it. Settings the
    run did not record (flags added since) are not compared. No run_config.json: nothing to compare.

    Raises:
        `ValueError`: Naming each changed setting with its old and new value (at most 60 characters of each).
    """
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        return
    with open(path) as f:
        saved = json.load(f)
    changed = {
        key: (saved[key], value)
        for key, value in settings.items()
        if key not in changeable and key in saved and saved[key] != value
    }
    if changed:
        changes = ", ".join(
            f"--{key}: {str(old)[:60]!r} there, {str(new)[:60]!r} now" for key, (old, new) in changed.items()
        )
        raise ValueError(
            f"{run_dir} holds a run trained with other settings ({changes}). Resume it with its own settings "
            "(only its length and the saving, logging, sampling and speed flags may change), or train into another "
            "output_dir."
        )
    was, now = [saved.get(key) for key in length_keys], [settings.get(key) for key in length_keys]
    if was != now:
        lengths = ", ".join(f"--{key} {value}" for key, value in zip(length_keys, now))
        logger.warning(
            f"Resuming with another length ({lengths}; was {', '.join(map(str, was))}): the learning-rate schedule "
            "continues as if the run had been planned at the new length."
        )
