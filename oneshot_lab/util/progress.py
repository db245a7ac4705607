"""Progress bars: widgets in a live Jupyter front end, plain text headless, nothing frozen in saved output."""

from __future__ import annotations

import os
import sys
from typing import Any

HEADLESS_ENV = "ONESHOT_LAB_HEADLESS"


def _in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a ZMQ shell)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def headless() -> bool:
    """Whether bars must not be widgets: set by the lab's papermill runner (or by you) via ONESHOT_LAB_HEADLESS=1."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0", "false", "False")


def bar(total: int | None = None, desc: str = "", disable: bool = False, **kwargs: Any):
    """A tqdm bar: a widget in interactive Jupyter, none in a headless kernel, text on stderr elsewhere."""
    if _in_notebook_kernel() and not headless():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm
            return notebook_tqdm(total=total, desc=desc, disable=disable, leave=False, **kwargs)
        except ImportError:  # ipywidgets not installed: fall back to text
            pass
    from tqdm import tqdm as text_tqdm
    # A headless kernel saves every redraw into the notebook: show no bar there at all.
    disable = disable or (_in_notebook_kernel() and headless())
    return text_tqdm(total=total, desc=desc, disable=disable, leave=False, file=sys.stderr,
                     mininterval=0.5, dynamic_ncols=True, **kwargs)
