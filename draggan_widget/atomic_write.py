"""Writing a file so that no reader ever finds it half written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def write_via_temp(path: PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp") -> Path:
    """Have ``write`` fill a temporary file beside ``path``, then move it into place.

    So no half-written file ever sits at ``path``, an older file there survives a failed
    write, and whatever a failed write left in the temporary file is removed.

    Args:
        path: the file to write.
        write: writes the whole file to the path it is given.
        suffix: appended to ``path``'s name for the temporary file.

    Returns:
        ``path``, as a `Path`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
