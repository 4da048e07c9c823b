"""argparse `type=` converters that check a number's range where the flag is read (command line and config files)."""

import argparse
import math


def number_in_range(
    kind: type,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
):
    """
    An argparse `type=` that converts the flag's text with `kind` (`int` or `float`) and refuses a value outside the
    range, or a non-finite float, so a mistake such as `--adam_beta1 1.5` is refused when the flags are read, on the
    command line and in `--config` files (`parse_args_with_config` puts config values through the same `type`).

    Args:
        kind (`type`): `int` or `float`.
        minimum (`float`, *optional*): Lower bound, included unless `exclusive_minimum`.
        maximum (`float`, *optional*): Upper bound, included unless `exclusive_maximum`.

    Returns:
        A callable `str -> kind` raising `argparse.ArgumentTypeError` with the allowed range.

    Example:
        ```py
        parser.add_argument("--adam_beta1", type=number_in_range(float, 0, 1, exclusive_maximum=True), default=0.9)
        ```
    """
    if kind not in (int, float):
        raise ValueError(f"kind must be int or float, got {kind!r}.")
    left = "(" if exclusive_minimum or minimum is None else "["  # an infinite end is never included
    right = ")" if exclusive_maximum or maximum is None else "]"
    low = "-inf" if minimum is None else _bound_text(minimum)
    high = "inf" if maximum is None else _bound_text(maximum)
    allowed = f"{left}{low}, {high}{right}"
    kind_name = "an integer" if kind is int else "a number"

    def convert(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{str(text)[:60]!r} is not {kind_name}") from None
        too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
        too_high = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
        if too_low or too_high or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {kind_name} in {allowed}, got {value!r}")
        return value

    convert.__name__ = f"{kind.__name__} in {allowed}"
    return convert


def _bound_text(bound: float) -> str:
    """An integer bound in full (a seed's 4294967295, not 4.29497e+09); a float one in its short form."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"
