"""Preset files: YAML or JSON mappings whose keys are a script's flag names, each value typed as its flag types it."""

import argparse
import json
import os
import reprlib

BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
VALUE_PREFIX_CHARS = 60

_value_repr = reprlib.Repr()
_value_repr.maxstring = _value_repr.maxother = VALUE_PREFIX_CHARS
_value_repr.maxlevel, _value_repr.maxlist, _value_repr.maxdict = 2, 4, 4


def short_repr(value) -> str:
    """
    `repr(value)` cut to `VALUE_PREFIX_CHARS` characters (a prefix, then "..."), built without expanding a huge nested
    value.
    """
    if isinstance(value, str):
        text = repr(value[:VALUE_PREFIX_CHARS])
    else:
        try:
            text = _value_repr.repr(value)
        except ValueError:  # an integer past Python's digit limit for str()
            text = f"<{type(value).__name__}>"
    return text if len(text) <= VALUE_PREFIX_CHARS else text[: VALUE_PREFIX_CHARS - 3] + "..."


def _yaml_loader():
    """PyYAML's safe loader, refusing aliases (a few nested aliases expand to gigabytes) and repeated keys."""
    import yaml

    class PresetLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise ValueError(
                    f"YAML aliases are not allowed in config files (found *{event.anchor[:40]} at "
                    f"{event.start_mark.line + 1}:{event.start_mark.column + 1}); write each value out."
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str) and key in seen:
                    raise ValueError(f"Key {short_repr(key)} is given twice (line {key_node.start_mark.line + 1}).")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return PresetLoader


def _no_repeated_keys(pairs):
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"Keys {short_repr(repeated)} are given twice.")
    return dict(pairs)


def _read_mapping(path: str):
    with open(path) as f:
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError as error:
                raise ImportError("YAML preset files need PyYAML: pip install pyyaml") from error
            try:
                return yaml.load(f, Loader=_yaml_loader())
            except yaml.YAMLError as error:
                raise ValueError(f"--config {path!r} is not valid YAML: {short_repr(str(error))}") from None
        if path.endswith(".json"):
            try:
                return json.load(f, object_pairs_hook=_no_repeated_keys)
            except json.JSONDecodeError as error:
                raise ValueError(f"--config {path!r} is not valid JSON: {error}") from None
    raise ValueError(f"--config {path!r} must end in .yaml, .yml or .json.")


def _is_boolean_flag(action) -> bool:
    return isinstance(action, argparse.BooleanOptionalAction) or (action.nargs == 0 and isinstance(action.const, bool))


def _boolean(key: str, value, action):
    if isinstance(value, bool):
        return value
    if value is None and action.default is None:
        return None
    word = value.strip().lower() if isinstance(value, str) else str(value) if type(value) is int else None
    if word not in BOOLEAN_WORDS:
        raise ValueError(
            f"{key}: {short_repr(value)} is not a boolean; use true/false (or yes/no, 1/0)"
            + ("" if action.default is not None else ", or null for the default")
            + "."
        )
    return BOOLEAN_WORDS[word]


def _command_line_text(key: str, value):
    """The text that gives `value` on the command line, so the flag's own type converts it as it would there."""
    if isinstance(value, bool):
        # YAML reads unquoted yes/no/on/off as booleans: for a flag that is not a switch, say to quote the word
        raise ValueError(f"{key}: {value} is a boolean, and this flag takes a value; quote a word ('no', 'yes').")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            return repr(value)
        except ValueError:  # an integer past Python's digit limit for str()
            raise ValueError(f"{key}: an integer of more than 4,300 digits is not a value of any flag.") from None
    kind = type(value).__name__
    raise ValueError(f"{key}: {short_repr(value)} (a {kind}) is not a single value; this flag takes one.")


def _typed_scalar(key: str, value, action):
    if value is None:
        if action.default is None:
            return None
        raise ValueError(f"{key}: null is not allowed; give a value (default {short_repr(action.default)}).")
    text = _command_line_text(key, value)
    convert = action.type if callable(action.type) else str
    try:
        converted = convert(text)
    except argparse.ArgumentTypeError as error:  # the type's own message says what is allowed
        raise ValueError(f"{key}: {short_repr(value)}: {str(error)[:200]}.") from None
    except (TypeError, ValueError) as error:
        name = getattr(convert, "__name__", "the flag's type")
        kind = {"int": "an integer", "float": "a number", "str": "a string"}.get(name, f"a valid value ({name})")
        detail = "" if name in ("int", "float", "str") else f": {str(error)[:200]}"
        raise ValueError(f"{key}: {short_repr(value)} is not {kind}{detail}.") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{key}: {short_repr(value)} is not one of {short_repr(list(action.choices))}.")
    return converted


def _typed_list(key: str, value, action):
    items = value if isinstance(value, list) else [value]  # one value, as `--flag 8` gives one on the command line
    if action.nargs == "+" and not items:
        raise ValueError(f"{key}: give at least one value.")
    if isinstance(action.nargs, int) and len(items) != action.nargs:
        raise ValueError(f"{key}: give exactly {action.nargs} values, got {len(items)}.")
    return [_typed_scalar(f"{key}[{index}]", item, action) for index, item in enumerate(items)]


def typed_config_value(key: str, value, action):
    """
    `value` as the command line would give it to `action`: switches (store_true, store_false,
    BooleanOptionalAction) take booleans (true/false, yes/no, 1/0 in any case, or YAML booleans); list flags (`nargs`
    "+", "*", N, or append) take a list of their type (or one value); other flags one value through their `type`,
    within their `choices`. `null` is taken only where the flag's default is None.

    Raises:
        `ValueError`: Naming `key` and quoting at most a short prefix of the value.
    """
    if _is_boolean_flag(action):
        return _boolean(key, value, action)
    if action.nargs == 0:  # store_const, count: nothing a file could give that the command line would not
        raise ValueError(f"{key}: this flag cannot be set from a config file.")
    if value is None and action.default is None:
        return None
    if action.nargs in ("+", "*") or isinstance(action.nargs, int) or isinstance(action, argparse._AppendAction):
        return _typed_list(key, value, action)
    return _typed_scalar(key, value, action)


def load_config_file(path: str, parser) -> dict:
    """
    Read `path` (.yaml, .yml or .json) and check its keys and values against the flags of `parser`: a key is a flag's
    name or another of its long option names (without dashes), and each value is converted by `typed_config_value`
    as the flag would convert it on the command line. YAML aliases and repeated keys are refused.

    Returns:
        `dict`: flag name (without dashes, with underscores) -> typed value, for `parser.set_defaults(**values)`.

    Raises:
        `ValueError`: For a missing file, an unknown key, or a value its flag would not take, naming the key and
            quoting at most a short prefix of the value.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--config {path!r} is not a file.")
    try:
        values = _read_mapping(path)
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith("--config") else f"--config {path!r}: {message}") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path!r} must hold a mapping of flag names to values.")
    actions = {}  # each flag by its name, and by its other long option names (aliases such as --ddpm_num_steps)
    for action in parser._actions:
        if action.dest in ("help", "config"):
            continue
        actions[action.dest] = action
        for option in action.option_strings:
            negation = isinstance(action, argparse.BooleanOptionalAction) and option.startswith("--no-")
            if option.startswith("--") and not negation:
                actions.setdefault(option[2:].replace("-", "_"), action)
    not_names = [key for key in values if not isinstance(key, str)]
    if not_names:
        raise ValueError(f"--config {path!r}: keys must be flag names, got {short_repr(not_names)}.")
    unknown = sorted(short_repr(key) for key in values if key.replace("-", "_") not in actions)
    if unknown:
        raise ValueError(f"Unknown keys [{', '.join(unknown)}] in --config {path!r}; known flags: {sorted(actions)}.")
    typed = {}
    for key, value in values.items():
        dest = actions[key.replace("-", "_")].dest
        if dest in typed:
            raise ValueError(f"--config {path!r}: {dest} is given twice (as {key!r} and another spelling).")
        try:
            typed[dest] = typed_config_value(key, value, actions[dest])
        except ValueError as error:
            raise ValueError(f"--config {path!r}: {error}") from None
    return typed


def parse_args_with_config(parser, argv=None):
    """`parser.parse_args(argv)`, where a `--config FILE` among the arguments first sets the defaults from FILE (typed
    by `load_config_file`), so that flags given on the command line win over the file."""
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**load_config_file(known.config, parser))
    return parser.parse_args(argv)
