"""The old ``gym`` package, which envpool and Super Mario Bros import: loaded once, without its banner.

gym 0.26 prints a multi-line "Gym has been unmaintained" notice to stderr on import; rlcli only touches
gym through the adapters in this folder, so the notice says nothing to an rlcli user.
"""

from __future__ import annotations

import contextlib
import io
import sys


def import_legacy_gym() -> None:
    """Import ``gym`` with its stderr notice swallowed (a no-op when already imported or not installed)."""
    if "gym" in sys.modules:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except ImportError:
            pass
