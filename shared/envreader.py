"""Reading typed settings from the environment, collecting every problem instead of stopping at the first.

Shared by `Settings.from_env` and `QuerySettings.from_env`, so every variable is parsed and reported the same
way: `NAME='raw': must be 1..64`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
Check = Callable[[T], "str | None"]


class EnvReader:
    """`get(name, parse, default, check)`: the parsed value, or `default` with the problem recorded."""

    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self.env, self.problems = env, problems

    def get(self, name: str, parse: Callable[[str], T], default: T, check: Check[T] | None = None) -> T:
        value = self.optional(name, parse, check)
        return default if value is None else value

    def optional(self, name: str, parse: Callable[[str], T], check: Check[T] | None = None) -> T | None:
        """The parsed value; None when the variable is unset, or invalid (the problem is recorded)."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        try:
            value = parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a valid {getattr(parse, '__name__', 'value')}")
            return None
        if check is not None and (msg := check(value)):
            self.problems.append(f"{name}={raw!r}: {msg}")
            return None
        return value


def positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def at_least_zero(v: float) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def in_range(lo: float, hi: float, why: str = "") -> Callable[[float], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be {lo}..{hi} {why}".rstrip()


def one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"
