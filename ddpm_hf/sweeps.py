"""
Grids of training runs (`train_scripts/sweep.py`): `--grid FLAG=V1,V2,...` specs read and checked against the
training script's own argparse parser, the cells of the grid in order with a folder name each, and the rule that says
whether a cell's run folder holds a finished run, a run to resume, or nothing yet.
"""

import argparse
import contextlib
import difflib
import hashlib
import importlib.util
import io
import itertools
import os
import re
import sys

from .training.checkpoints import list_checkpoints
from .training.config_file import BOOLEAN_WORDS

# The training scripts a sweep runs, and what each writes: train_image.py checkpoints and can resume; train_2d.py
# writes its folder whole at the end (through a staging folder), so a killed one left nothing to resume.
SWEEP_SCRIPTS = ("train_image.py", "train_2d.py")
# Flags the sweep sets itself on every cell: the run folder, and how a killed cell is taken up again.
RESERVED_FLAGS = ("output_dir", "overwrite_output_dir", "resume_from_checkpoint")
# What a cell in each state is run with (`run_state`): nothing there yet, a run to continue from its newest
# checkpoint, a folder with nothing to continue from (started again), a finished run (kept, never run).
STATE_FLAGS = {
    "new": [],
    "resume": ["--resume_from_checkpoint", "latest"],
    "restart": ["--overwrite_output_dir"],
    "finished": None,
}
# Characters a cell's folder name keeps; every other one becomes "_".
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._=,+-]")
MAX_NAME_LENGTH = 200


def parse_grid_spec(spec: str) -> tuple[str, list[str]]:
    """
    One `--grid` spec, `FLAG=V1,V2,...`, as (flag, values).

    Args:
        spec (`str`): A flag name (with or without its leading `--`), `=`, and its values separated by commas; the
            spaces around each value are dropped.

    Returns:
        `tuple[str, list[str]]`: The flag name without dashes in front, and its values in the order given.

    Raises:
        `ValueError`: For a spec without `=` or a flag name, an empty list of values, an empty value, or a value given
            twice; the message names the spec and the form allowed.
    """
    flag, equals, values_text = spec.partition("=")
    flag = flag.strip().removeprefix("--")
    if not equals or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", flag):
        raise ValueError(
            f"--grid {spec!r}: write FLAG=VALUE1,VALUE2,... with a flag name of the training script, e.g. "
            "beta_schedule=linear,cosine."
        )
    if not values_text.strip():
        raise ValueError(f"--grid {spec!r}: no values for {flag}; give at least one, e.g. {flag}=A,B.")
    values = [value.strip() for value in values_text.split(",")]
    if "" in values:
        raise ValueError(f"--grid {spec!r}: an empty value in {values_text!r}; values are separated by single commas.")
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"--grid {spec!r}: {repeated} given more than once; give each value of {flag} once.")
    return flag, values


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """
    Every `--grid` spec (`parse_grid_spec`) as one grid: flag -> values, in the order the specs were given.

    Args:
        specs (`list[str]`): The `--grid` values.

    Returns:
        `dict[str, list[str]]`: The grid; its first flag makes the rows of the sweep's figures.

    Raises:
        `ValueError`: For no spec at all, a bad spec, or a flag given in two specs (`-` and `_` are the same).
    """
    if not specs:
        raise ValueError("Give at least one --grid FLAG=VALUE1,VALUE2,... (e.g. --grid beta_schedule=linear,cosine).")
    grid = {}
    for spec in specs:
        flag, values = parse_grid_spec(spec)
        same = [seen for seen in grid if seen.replace("-", "_") == flag.replace("-", "_")]
        if same:
            raise ValueError(
                f"--grid {flag} is given twice ({same[0]}={','.join(grid[same[0]])} and {spec!r}); put all its values "
                f"in one --grid {flag}=A,B,..."
            )
        grid[flag] = values
    return grid


def grid_cells(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """
    The cells of `grid`, every combination of one value per flag, in order: the first flag changes slowest (row by
    row in the sweep's figures), the last one fastest.

    Example:
        `grid_cells({"a": ["1", "2"], "b": ["x", "y"]})` is `[{"a": "1", "b": "x"}, {"a": "1", "b": "y"},
        {"a": "2", "b": "x"}, {"a": "2", "b": "y"}]`.
    """
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def cell_name(cell: dict[str, str]) -> str:
    """
    A cell's folder name, readable and safe for file systems: `flag=value` pairs joined by commas
    (`beta_schedule=linear,prediction_type=x0`); characters other than letters, digits and `._=,+-` become `_`, and a
    name longer than `MAX_NAME_LENGTH` is cut and ends in a hash of the whole.
    """
    name = _NAME_CHARACTERS.sub("_", ",".join(f"{flag}={value}" for flag, value in cell.items()))
    if name.startswith("."):  # no hidden folders
        name = "_" + name[1:]
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME_LENGTH - 11]}-{digest}"
    return name


def cell_names(cells: list[dict[str, str]]) -> list[str]:
    """
    `cell_name` of every cell, refused when two cells would share a folder (values that differ only in characters a
    folder name cannot hold, or in case, for file systems that ignore it).

    Raises:
        `ValueError`: Naming both cells and the folder name.
    """
    names, seen = [], {}
    for cell in cells:
        name = cell_name(cell)
        if name.lower() in seen:
            raise ValueError(
                f"The grid cells {seen[name.lower()]} and {cell} would share the folder {name!r}; make their values "
                "differ in letters or digits."
            )
        seen[name.lower()] = cell
        names.append(name)
    return names


def grid_layout(grid: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """
    The rows and columns of the sweep's figures, as labels: rows are the values of the first flag, columns the
    combinations of the others (one row, columns the values, for a single flag). Cell `i` of `grid_cells(grid)` sits
    at row `i // len(columns)`, column `i % len(columns)`.

    Returns:
        `tuple[list[str], list[str]]`: Row labels (`[""]` for a single flag) and column labels.
    """
    flags = list(grid)
    if len(flags) == 1:
        return [""], [f"{flags[0]}={value}" for value in grid[flags[0]]]
    rows = [f"{flags[0]}={value}" for value in grid[flags[0]]]
    columns = [
        ", ".join(f"{flag}={value}" for flag, value in zip(flags[1:], values))
        for values in itertools.product(*(grid[flag] for flag in flags[1:]))
    ]
    return rows, columns


def load_script(path: str):
    """
    Import a training script by its path (its `if __name__ == "__main__"` part does not run), to read its parser.

    Raises:
        `ValueError`: When `path` is not a file.
    """
    if not os.path.isfile(path):
        raise ValueError(f"No training script at {path!r}.")
    name = "ddpm_hf_sweep_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _ParserCaught(Exception):
    pass


def script_parser(module) -> argparse.ArgumentParser | None:
    """
    The argparse parser of a training script loaded with `load_script`: its `build_parser()`, else the parser its
    `parse_args()` builds, caught where it hands it to `parse_args_with_config` (before anything is parsed or checked).
    None when the script has neither.
    """
    if callable(getattr(module, "build_parser", None)):
        return module.build_parser()
    original = getattr(module, "parse_args_with_config", None)
    if original is None or not callable(getattr(module, "parse_args", None)):
        return None

    def catch(parser, argv=None):
        raise _ParserCaught(parser)

    module.parse_args_with_config = catch
    try:
        module.parse_args([])
    except _ParserCaught as caught:
        return caught.args[0]
    except (ValueError, SystemExit):
        return None
    finally:
        module.parse_args_with_config = original
    return None


def _is_switch(action) -> bool:
    return isinstance(action, argparse.BooleanOptionalAction) or (action.nargs == 0 and isinstance(action.const, bool))


def _find_action(parser, flag: str, script: str):
    """The parser's action for `--flag` (or its spelling with `_` for `-`), refused naming close flags."""
    options = parser._option_string_actions
    for option in (f"--{flag}", f"--{flag.replace('-', '_')}"):
        if option in options:
            return option, options[option]
    known = sorted(
        option[2:]
        for option in options
        if option.startswith("--") and option[2:] != "help" and not option.startswith("--no-")
    )
    close = difflib.get_close_matches(flag, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else f" Its flags: {', '.join(known)}."
    raise ValueError(f"--grid {flag}=...: {script} has no flag --{flag}.{hint}")


def grid_tokens(
    grid: dict[str, list[str]],
    parser: argparse.ArgumentParser | None,
    script: str,
    reserved=RESERVED_FLAGS,
    taken=frozenset(),
) -> dict[str, dict[str, list[str]]]:
    """
    The command-line words that give each value of each grid flag to the training script, checked against its
    parser: the flag must be one of the script's, not one the sweep sets (`reserved`) or every run is given
    (`taken`), and not the same flag as another grid flag under another name (an alias). Switches take true or false
    (yes/no, 1/0): `--flag` / `--no-flag`, or `--flag` / nothing for a store_true flag; list flags (`nargs` "+", "*"
    or N) take their items separated by spaces (`hidden_dims=64 64,128 128`); every other flag takes one word,
    `--flag=value`. Whether the script accepts each value (its type, choices and checks) is for
    `check_values_with_parser` and `check_with_script`.

    Args:
        grid (`dict[str, list[str]]`): From `parse_grid`.
        parser (`argparse.ArgumentParser`, *optional*): The script's parser (`script_parser`); without it every flag
            is passed as `--flag=value` and only `reserved` is checked here.
        script (`str`): The script's name, for messages.
        reserved (`Iterable[str]`, defaults to `RESERVED_FLAGS`): Flag destinations the sweep sets itself.
        taken (`Iterable[str]`, defaults to none): Flag destinations every run is given (the training flags, see
            `flags_set_by`).

    Returns:
        `dict[str, dict[str, list[str]]]`: flag -> value -> words.

    Raises:
        `ValueError`: Naming the flag (and value) and what is allowed.
    """
    tokens, destinations = {}, {}
    for flag, values in grid.items():
        if parser is None:
            if flag.replace("-", "_") in reserved:
                raise ValueError(f"--grid {flag}=...: the sweep sets --{flag} itself; it cannot be swept.")
            tokens[flag] = {value: [f"--{flag}={value}"] for value in values}
            continue
        option, action = _find_action(parser, flag, script)
        if action.dest in reserved:
            why = "from its own --config" if action.dest == "config" else "one run folder per cell, resumed as needed"
            raise ValueError(f"--grid {flag}=...: the sweep sets --{action.dest} itself ({why}); it cannot be swept.")
        if action.dest in taken:
            raise ValueError(
                f"--grid {flag}=...: --{action.dest} is also among the training flags given to every run; sweep it "
                "or set it, not both."
            )
        if action.dest in destinations:
            raise ValueError(
                f"--grid {flag} and --grid {destinations[action.dest]} are the same flag of {script} "
                f"(--{action.dest}); give its values once."
            )
        destinations[action.dest] = flag
        if isinstance(action, argparse.BooleanOptionalAction) and option.startswith("--no-"):
            raise ValueError(f"--grid {flag}=...: sweep the switch as {option[5:]}=true,false.")
        tokens[flag] = {value: _value_tokens(flag, value, option, action, script) for value in values}
    return tokens


def _value_tokens(flag: str, value: str, option: str, action, script: str) -> list[str]:
    if _is_switch(action):
        word = value.lower()
        if word not in BOOLEAN_WORDS:
            raise ValueError(
                f"--grid {flag}={value}: --{action.dest} of {script} is a switch; its grid values are true and false "
                "(or yes/no, 1/0)."
            )
        on = BOOLEAN_WORDS[word]
        if isinstance(action, argparse.BooleanOptionalAction):
            return [option] if on else [f"--no-{option[2:]}"]
        return [option] if on == action.const else []
    if action.nargs == 0:
        raise ValueError(f"--grid {flag}=...: --{action.dest} of {script} takes no value; it cannot be swept.")
    if action.nargs in ("+", "*") or isinstance(action.nargs, int) or isinstance(action, argparse._AppendAction):
        return [option, *value.split()]
    return [f"{option}={value}"]


def flags_set_by(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """
    The flag destinations `argv` sets, as `parser` reads it (aliases and abbreviations included); words it does not
    know are left out (the script's own parse refuses them). Required flags are not asked for.

    Raises:
        `ValueError`: Where the parser refuses a value (a `FlagParser`), with its message.
    """
    unset = object()
    namespace = argparse.Namespace(**{action.dest: unset for action in parser._actions})
    required = [action for action in parser._actions if action.required]
    for action in required:
        action.required = False
    try:
        with contextlib.redirect_stderr(io.StringIO()) as errors:
            parser.parse_known_args(argv, namespace)
    except SystemExit:
        raise ValueError(_last_line(errors.getvalue())) from None
    finally:
        for action in required:
            action.required = True
    return {dest for dest, value in vars(namespace).items() if value is not unset}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "refused"


def check_with_script(parse_args, argv: list[str], what: str):
    """
    Parse `argv` with a script's own `parse_args` (its flags, types, choices and checks), refusing what it refuses.
    Nothing is trained or written: the scripts only check their flags and the run folder there.

    Args:
        parse_args (`Callable[[list[str]], argparse.Namespace]`): The script's `parse_args`.
        argv (`list[str]`): The words after the script's name.
        what (`str`): What `argv` is, for the message (e.g. `"grid cell beta_schedule=nope"`).

    Returns:
        `argparse.Namespace`: What `parse_args` returned.

    Raises:
        `ValueError`: `"{what}: {the script's message}"`, for a `ValueError` of the script or an argparse exit (its
            message from stderr).
    """
    try:
        with contextlib.redirect_stderr(io.StringIO()) as errors, contextlib.redirect_stdout(io.StringIO()):
            return parse_args(argv)
    except SystemExit as exit_:
        message = _last_line(errors.getvalue()) if exit_.code else "asks for --help"
    except ValueError as error:
        message = str(error)
    raise ValueError(f"{what}: {message}")


def check_values_with_parser(parser: argparse.ArgumentParser, tokens: dict[str, dict[str, list[str]]], script: str):
    """
    Each grid value alone through the script's parser (its type and choices, e.g. `beta_schedule=nope`), so that a
    bad value is refused by name before any combination is tried.

    Raises:
        `ValueError`: `"--grid FLAG=VALUE: {script} refuses it: {argparse's message}"`.
    """
    for flag, by_value in tokens.items():
        for value, words in by_value.items():
            try:
                flags_set_by(parser, words)
            except ValueError as error:
                raise ValueError(f"--grid {flag}={value}: {script} refuses it: {error}") from None


def run_state(run_dir: str, script: str) -> str:
    """
    What a cell's run folder holds, and so what the sweep does with it (`STATE_FLAGS`):

    - `"finished"`: kept, never run again. train_2d.py: `metrics.json` is there (the folder appears whole when the
      run ends). train_image.py: `metrics.json` is there and was written no earlier than `denoising_grid.png`, which
      only the final save writes (just before the pipeline and `metrics.json`; the saves during training write
      `metrics.json` without it).
    - `"resume"` (train_image.py): not finished, with a checkpoint: run again with `--resume_from_checkpoint latest`.
    - `"restart"`: a folder with nothing to continue from: run again with `--overwrite_output_dir`.
    - `"new"`: no folder yet.

    Args:
        run_dir (`str`): The cell's run folder.
        script (`str`): One of `SWEEP_SCRIPTS`.
    """
    if script not in SWEEP_SCRIPTS:
        raise ValueError(f"Unknown training script {script!r}; a sweep runs one of {list(SWEEP_SCRIPTS)}.")
    if not os.path.isdir(run_dir):
        return "new"
    metrics = os.path.join(run_dir, "metrics.json")
    if script == "train_2d.py":
        return "finished" if os.path.isfile(metrics) else "restart"
    final_figure = os.path.join(run_dir, "denoising_grid.png")
    if (
        os.path.isfile(metrics)
        and os.path.isfile(final_figure)
        and os.path.getmtime(metrics) >= os.path.getmtime(final_figure)
    ):
        return "finished"
    return "resume" if list_checkpoints(os.path.join(run_dir, "checkpoints")) else "restart"


def evaluation_is_current(eval_dir: str, run_dir: str) -> bool:
    """Whether `eval_dir` holds an `eval.json` written no earlier than the run's `metrics.json` (an evaluation of the
    model as it is now; a cell trained again is evaluated again)."""
    eval_json, metrics = os.path.join(eval_dir, "eval.json"), os.path.join(run_dir, "metrics.json")
    return (
        os.path.isfile(eval_json)
        and os.path.isfile(metrics)
        and os.path.getmtime(eval_json) >= os.path.getmtime(metrics)
    )
