"""gym 0.23, which BALROG's NLE fork and minihack are built on, imported quietly.

gym prints a notice on stderr at every import, and minihack warns about pkg_resources;
the rest of this project uses gymnasium. Import this module before ``nle`` or
``minihack``: it registers NetHack's and MiniHack's ids with gym.
"""

import contextlib
import io
import warnings

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    import gym
    import minihack  # noqa: F401 - registers the MiniHack ids
    import nle  # noqa: F401 - registers the NetHack ids

__all__ = ["gym"]
