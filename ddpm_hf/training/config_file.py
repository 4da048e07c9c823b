"""Preset files: YAML or JSON mappings whose keys are a script's flag names."""

import json
import os


def load_config_file(path: str, parser) -> dict:
    """
    Read `path` (.yaml, .yml or .json) and check its keys against the flags of `parser`.

    Returns:
        `dict`: flag name (without dashes, with underscores) -> value, for `parser.set_defaults(**values)`.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--config {path!r} is not a file.")
    with open(path) as f:
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError as error:
                raise ImportError("YAML preset files need PyYAML: pip install pyyaml") from error
            values = yaml.safe_load(f)
        elif path.endswith(".json"):
            values = json.load(f)
        else:
            raise ValueError(f"--config {path!r} must end in .yaml, .yml or .json.")
    if not isinstance(values, dict):
        raise ValueError(f"--config {path!r} must hold a mapping of flag names to values.")
    known = {action.dest for action in parser._actions} - {"help", "config"}
    unknown = sorted(key for key in values if key.replace("-", "_") not in known)
    if unknown:
        raise ValueError(f"Unknown keys {unknown} in --config {path!r}; known flags: {sorted(known)}.")
    return {key.replace("-", "_"): value for key, value in values.items()}


def parse_args_with_config(parser, argv=None):
    """`parser.parse_args(argv)`, where a `--config FILE` among the arguments first sets the defaults from FILE, so
    that flags given on the command line win over the file."""
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**load_config_file(known.config, parser))
    return parser.parse_args(argv)
