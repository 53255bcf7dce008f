"""MOSAIC's own GUI code, run headless against this worker: a host for MainWindow's
operator handlers (Reset All, Step All, Stop, Script Mode, the PettingZoo and parallel
MultiGrid paths) and the real widgets and services they use.

MOSAIC's source comes from the user's copy (``MOSAIC_SOURCE``; CI sets it to
../shared/reference/mosaic, SOURCE.md there). It is copied to a scratch folder first,
because MOSAIC writes its logs and telemetry under its own tree (``var/``); nothing of it
is changed. ``MainWindow`` itself needs MOSAIC's trainer daemon, so its handler functions
are bound, unchanged, to ``Host``, which holds the real ``OperatorLauncher``,
``MultiOperatorService``, ``RenderTabs`` and ``OperatorScriptExecutionManager``; only the
control panel, a large form of unrelated tabs, is a small recorder of the calls made on it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "mosaic"


def mosaic_source() -> Path | None:
    """MOSAIC's source tree, where the user has one."""
    path = Path(os.environ.get("MOSAIC_SOURCE", DEFAULT_SOURCE))
    return path if (path / "gym_gui" / "ui" / "main_window.py").is_file() else None


def missing() -> str | None:
    """Why MOSAIC's GUI code cannot run here (None where it can)."""
    if mosaic_source() is None:
        return "MOSAIC's source is absent (set MOSAIC_SOURCE to a checkout of it)"
    try:
        import PyQt6.QtWebEngineCore  # noqa: F401 - main_window imports it
        import qtpy  # noqa: F401
    except ImportError as error:
        return f"MOSAIC's GUI needs PyQt6, PyQt6-WebEngine and qtpy ({error})"
    return None


_APP = None


def load(scratch: Path):
    """Import MOSAIC's ``gym_gui`` from a copy in ``scratch``: its main_window module."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyqt6")  # qtpy: the binding MOSAIC uses
    copy = scratch / "mosaic"
    if not copy.exists():
        source = mosaic_source()
        shutil.copytree(source / "gym_gui", copy / "gym_gui",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(source / "3rd_party", copy / "3rd_party",
                        ignore=shutil.ignore_patterns("__pycache__"))
    if str(copy) not in sys.path:
        sys.path.insert(0, str(copy))
    from PyQt6 import QtWidgets

    global _APP  # Qt's application lives as long as the tests
    _APP = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    import gym_gui.ui.main_window as main_window

    return main_window


class _Recorder:
    """Records the calls made on it (the control panel's tabs: set_parallel_mode...)."""

    def __init__(self, **attributes):
        self.calls: list[tuple] = []
        self.__dict__.update(attributes)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))

        return record


# MainWindow's handlers for operators, as MOSAIC wrote them.
HANDLERS = (
    "_is_pettingzoo_multiagent", "_is_parallel_multiagent", "_on_reset_all_operators",
    "_on_step_all_operators", "_poll_operator_responses", "_handle_operator_response",
    "_on_stop_operators", "_on_script_launch_operator", "_on_script_reset_operator",
    "_on_script_step_operator", "_on_script_stop_operator", "_on_reset_pettingzoo_multiagent",
    "_create_pettingzoo_env", "_render_pettingzoo_frame", "_get_chess_legal_moves",
    "_convert_uci_to_action_index", "_on_step_pettingzoo_multiagent",
    "_poll_pettingzoo_action", "_execute_pettingzoo_action", "_on_reset_parallel_multiagent",
    "_create_parallel_multiagent_env", "_render_parallel_multiagent_frame",
    "_on_step_parallel_multiagent", "_execute_parallel_multiagent_step",
    "_get_parallel_agent_obs", "_get_parallel_action_labels", "_resolve_agent_colors",
    "_clear_parallel_action_panel", "_on_evdev_agent_action",
)


def _human_input():
    """The keyboard controller's part the handlers touch: its signal, and no evdev."""
    from PyQt6.QtCore import QObject, pyqtSignal

    class HumanInput(QObject):
        agent_action_selected = pyqtSignal(str, int)
        _use_evdev = False

    return HumanInput()


def make_host(main_window):
    """A host of MainWindow's operator handlers and the real parts they use."""
    from gym_gui.logging_config.helpers import LogConstantMixin
    from gym_gui.services.operator import MultiOperatorService
    from gym_gui.services.operator_launcher import OperatorLauncher
    from gym_gui.services.operator_script_execution_manager import (
        OperatorScriptExecutionManager,
    )
    from gym_gui.ui.widgets.render_tabs import RenderTabs
    from PyQt6 import QtWidgets

    window_class = main_window.MainWindow
    namespace = {name: getattr(window_class, name) for name in HANDLERS}
    host_class = type("Host", (LogConstantMixin,), namespace)
    host = host_class()
    host._logger = main_window._LOGGER if hasattr(main_window, "_LOGGER") else None
    host._operator_launcher = OperatorLauncher(python_executable=sys.executable)
    host._multi_operator_service = MultiOperatorService()
    host._render_tabs = RenderTabs()
    host._status_bar = QtWidgets.QStatusBar()
    script = OperatorScriptExecutionManager()
    host._control_panel = _Recorder(operators_tab=_Recorder(script_execution_manager=script))
    script.launch_operator.connect(host._on_script_launch_operator)
    script.reset_operator.connect(host._on_script_reset_operator)
    script.step_operator.connect(host._on_script_step_operator)
    script.stop_operator.connect(host._on_script_stop_operator)
    host._human_input = _human_input()
    host._shared_pettingzoo_env = None
    host._pettingzoo_multiagent_mode = False
    host._pettingzoo_player_handles = {}
    host._parallel_multiagent_mode = False
    host._parallel_multiagent_env = None
    host._parallel_multiagent_config = None
    host._parallel_multiagent_step_state = None
    host._parallel_player_handles = {}
    host._parallel_action_panel = None
    host._parallel_episode_index = 0
    host._parallel_episode_reward = 0.0
    host._parallel_step_index = 0
    host._multigrid_aec_mode = False
    return host


def spin(until, timeout_s: float = 60.0, what: str = "the GUI") -> None:
    """Run Qt's event loop until ``until()`` holds, or fail after ``timeout_s``."""
    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not done after {timeout_s:.0f} s")
        app.processEvents()
        time.sleep(0.01)
