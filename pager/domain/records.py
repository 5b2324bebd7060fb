"""Copying the core's frozen records with some fields changed."""

from typing import Any, TypeVar

R = TypeVar("R")


def evolve(record: R, **changes: Any) -> R:
    """`dataclasses.replace` for the core's frozen dataclasses, without its cost.

    `replace` walks the fields and runs the generated `__init__`, which sets each field
    through `object.__setattr__`, and a write makes several copies (README, Benchmarks). The
    records have no `__post_init__` and no slots, so copying their `__dict__` is the same
    copy. Unknown names are refused, as `replace` refuses them.
    """
    unknown = changes.keys() - record.__dataclass_fields__.keys()  # type: ignore[attr-defined]
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field(s) {', '.join(sorted(unknown))}")
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__)
    copy.__dict__.update(changes)
    return copy
