"""The kernels' constants, read from their one definition: the integer `#define`s of gpu/kernels/common.cuh.

The launchers need the kernels' block and tile sizes (grid arithmetic, shared-memory sizes). Rather than repeat them
in Python, where they would drift from the CUDA source, this module parses common.cuh. The parser is deliberately
small: it reads lines of the form

    #define NAME 123   // a comment

(a name in capitals, a decimal integer, an optional comment) and nothing else; any other `#define` (an expression
such as MASKED, a function-like macro) is not a constant for Python and is skipped. A name defined twice is an error.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

COMMON_HEADER = Path(__file__).resolve().parent / "kernels" / "common.cuh"

_INTEGER_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Z][A-Z0-9_]*)\s+(-?\d+)\s*(?://.*)?$")


def parse_integer_defines(text: str) -> dict[str, int]:
    """NAME -> value for every `#define NAME <decimal integer>` line of a C/CUDA source text."""
    constants: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = _INTEGER_DEFINE.match(line)
        if m is None:
            continue
        name, value = m.group(1), int(m.group(2))
        if name in constants:
            raise ValueError(f"{COMMON_HEADER.name}:{number}: {name} is defined twice")
        constants[name] = value
    return constants


@functools.cache
def kernel_constants() -> dict[str, int]:
    """The integer constants of gpu/kernels/common.cuh (BQ, BK_F32, BK_TC, ATTENTION_THREADS, ...)."""
    return parse_integer_defines(COMMON_HEADER.read_text(encoding="utf-8"))
