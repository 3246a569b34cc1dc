"""Where a library warning should point: the user's line, not a frame inside steerfair or the libraries that call it."""

from __future__ import annotations

import contextlib
import os
import sys
from types import FrameType

__all__ = ["user_stacklevel"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
#: libraries whose frames sit between the user's call and steerfair: scikit-learn wraps fit_transform and runs
#: pipelines and searches; torch and transformers run the hooks of steerfair.llm inside forward and generate
_CALLERS = ("sklearn", "joblib", "torch", "transformers")


def _inside(filename: str) -> bool:
    path = os.path.abspath(filename)
    if path == contextlib.__file__ or path.startswith(_PACKAGE + os.sep):
        return True
    parts = path.split(os.sep)
    return any(name in parts for name in _CALLERS)


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn`, called from inside steerfair, that names the first frame outside
    steerfair, :mod:`contextlib`, scikit-learn, torch and transformers (the user's call, also through a pipeline, a
    ``set_output`` wrapper or a model's ``forward`` / ``generate`` running steerfair's hooks); the outermost frame if
    every frame is inside."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_back is not None and _inside(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level
