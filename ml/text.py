"""Text files read in bounded memory, however they are made: lines are read up to a
length limit, so that a file of one 500 MB line is refused after a megabyte instead of
being read whole, and a file's head is read up to a byte limit."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterator

from .errors import TooLarge, UnsupportedFormat

#: Longest line read: a CSV row of 1024 channels of 20-character numbers is 20 KB.
MAX_LINE_BYTES = 1024**2


def bounded_lines(file: IO[str], max_chars: int = MAX_LINE_BYTES, first_line: int = 1) -> Iterator[str]:
    """The lines of a text ``file``, each with its line ending, numbered from
    ``first_line``; raises TooLarge naming the first line longer than ``max_chars``."""
    number = first_line
    while line := file.readline(max_chars + 1):
        if len(line) > max_chars and not line.endswith("\n"):
            raise TooLarge(f"line {number} is longer than {max_chars} characters", line=number,
                           limit_chars=max_chars)
        yield line
        number += 1


def head(path: Path, max_bytes: int, what: str = "the file") -> tuple[str, bool]:
    """The whole lines among the first ``max_bytes`` of a UTF-8 text file, and whether
    they are the whole file. Raises TooLarge when not even one line fits, or
    UnsupportedFormat for text that is not UTF-8."""
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    complete = len(data) <= max_bytes
    if not complete:
        cut = data.rfind(b"\n", 0, max_bytes)
        if cut < 0:
            raise TooLarge(f"the first line of {what} is longer than {max_bytes} bytes", line=1,
                           limit_bytes=max_bytes)
        data = data[:cut + 1]
    try:
        return data.decode("utf-8"), complete
    except UnicodeDecodeError:
        raise UnsupportedFormat(f"{what} is not UTF-8 text") from None
