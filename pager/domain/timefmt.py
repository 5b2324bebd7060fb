"""The transmitter's timestamp format: local time, no offset, whole seconds."""

from datetime import datetime

FORMAT = "%Y-%m-%dT%H:%M:%S"
WRITTEN = "a local time written YYYY-MM-DDTHH:MM:SS"  # how every error message names it


def fmt(t: datetime) -> str:
    return t.isoformat(timespec="seconds")  # the same text as FORMAT, several times faster


def parse(text: str) -> datetime:
    """Parse exactly `YYYY-MM-DDTHH:MM:SS` in digits 0-9 (strptime would also take other
    scripts' digits); raises ValueError for anything else."""
    if len(text) != 19 or not text.isascii():
        raise ValueError(text)
    return datetime.strptime(text, FORMAT)
