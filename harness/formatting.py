"""How parameter values read in tables and protocol text: pixel-space eps as k/255, lists comma-separated.
Shared by the tasks (their protocol facts) and the report."""
from __future__ import annotations

from typing import Any


def format_param(value: Any) -> str:
    """Show pixel-space eps as k/255 where it is one, so 0.0313725 reads 8/255."""
    if isinstance(value, float):
        k = value * 255
        if value > 0 and abs(k - round(k)) < 1e-6 and round(k) < 255:
            return f"{round(k)}/255"
        return f"{value:g}"
    return str(value)


def listing(values: Any) -> str:
    """A parameter that may be a list, as text: ``[2/255, 8/255]`` reads ``2/255, 8/255``."""
    if isinstance(values, (list, tuple)):
        return ", ".join(format_param(v) for v in values)
    return format_param(values)
