"""MOSAIC's own GUI code drives the worker, headless: Reset All / Step All, Script Mode
with two episodes, a PettingZoo player chosen by this worker, a parallel MultiGrid launch
and Stop, each through MainWindow's handlers as MOSAIC wrote them (tests/mosaic_gui.py),
against a loopback model server."""

import json
import time

import numpy as np
import pytest

from tests import mosaic_gui
from tests.stubs import StubServer, openai_server

pytestmark = pytest.mark.skipif(mosaic_gui.missing() is not None,
                                reason=mosaic_gui.missing() or "")


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return mosaic_gui.load(tmp_path_factory.mktemp("mosaic-gui"))


@pytest.fixture
def host(window, tmp_path, monkeypatch):
    # The workers the GUI starts inherit this: a response cache of the test's own.
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(tmp_path / "cache"))
    host = mosaic_gui.make_host(window)
    yield host
    host._on_stop_operators()


def settings(stub, **more) -> dict:
    """An LLM operator's settings, as MOSAIC's operator form writes them."""
    return {"client_name": "openai", "model_id": "gpt-test", "base_url": f"{stub.url}/v1",
            "api_key": "sk-gui-test", "agent_type": "naive", "num_episodes": 2,
            "max_steps": 3, **more}


def shown_frame(host, operator_id: str) -> np.ndarray:
    """The RGB frame MOSAIC's operator panel shows, read back from its pixmap."""
    container = host._render_tabs.multi_operator_view.get_container(operator_id)
    image = container._renderer_strategy._view._current_pixmap.toImage()
    from PyQt6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    data = np.frombuffer(image.constBits().asstring(stride * height), np.uint8)
    return data.reshape(height, stride)[:, :width * 3].reshape(height, width, 3)


def test_reset_all_and_step_all_show_the_whole_grid_and_count_steps(host, window):
    from gym_gui.services.operator import OperatorConfig

    from balrog_worker import envs

    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer="go forward") as stub:
        config = OperatorConfig.single_agent(
            "op_a", "A", "balrog_worker", "llm", env_name="babyai",
            task="BabyAI-GoToLocal-v0", settings=settings(stub), max_steps=3)
        host._multi_operator_service.add_operator(config)
        host._render_tabs.add_operator_view(config)
        host._on_reset_all_operators(5)
        handle = host._operator_launcher.get_handle("op_a")
        container = host._render_tabs.multi_operator_view.get_container("op_a")
        host._poll_operator_responses([("op_a", handle)])  # the init, then the ready
        mosaic_gui.spin(lambda: container._renderer_strategy is not None, 30, "ready")
        # The ready event's frame is the whole grid, as the environment draws it.
        game = envs.open_game("babyai", "BabyAI-GoToLocal-v0")
        game.reset(5)
        assert np.array_equal(shown_frame(host, "op_a"), game.display())
        game.close()
        steps = []
        for _ in range(3):
            before = len(stub.requests)
            host._on_step_all_operators(5)
            mosaic_gui.spin(lambda before=before: len(stub.requests) > before, 30, "a step")
            mosaic_gui.spin(lambda: container._current_step not in steps, 30, "its display")
            steps.append(container._current_step)
        assert steps == [0, 1, 2]
        assert shown_frame(host, "op_a").shape == (256, 256, 3)
        host._on_stop_operators()
        assert handle.process.wait(timeout=30) is not None


def test_script_mode_runs_two_episodes_to_the_end(host):
    from gym_gui.services.operator import OperatorConfig

    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer="turn left") as stub:
        config = OperatorConfig.single_agent(
            "op_s", "S", "balrog_worker", "llm", env_name="babyai",
            task="BabyAI-GoToLocal-v0", settings=settings(stub, max_steps=4), max_steps=4)
        script = host._control_panel.operators_tab.script_execution_manager
        completed = []
        script.experiment_completed.connect(completed.append)
        started = time.monotonic()
        script.start_experiment([config], {"num_episodes": 2, "seeds": [11, 12],
                                           "step_delay_ms": 10})
        # MOSAIC's reader loses a line that shares a read with the one before it: with
        # the init and the ready in one read, Script Mode waited 30 s and gave up.
        mosaic_gui.spin(lambda: completed, 60, "Script Mode's two episodes")
        elapsed = time.monotonic() - started
        calls = len(stub.requests)
    assert completed == [2]
    assert calls == 8  # two episodes of four steps, every step asked once
    assert elapsed < 25, f"{elapsed:.1f} s for 8 steps"


def test_a_pettingzoo_player_is_chosen_by_the_worker_and_played_by_the_gui(host):
    from gym_gui.services.operator import OperatorConfig, WorkerAssignment

    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer="I will take the middle.\n3") as stub:
        workers = {player: WorkerAssignment("balrog_worker", "llm", settings(stub))
                   for player in ("player_0", "player_1")}
        config = OperatorConfig("op_p", "P", env_name="pettingzoo", task="connect_four_v3",
                                workers=workers)
        host._multi_operator_service.add_operator(config)
        host._render_tabs.add_operator_view(config)
        host._on_reset_all_operators(3)
        env = host._shared_pettingzoo_env
        assert env is not None and host._pettingzoo_multiagent_mode
        for mover in ("player_0", "player_1"):
            assert env.agent_selection == mover
            host._on_step_all_operators(3)
            mosaic_gui.spin(lambda mover=mover: env.agent_selection != mover, 60,
                            f"{mover}'s move")
        prompts = [request["body"]["messages"] for request in stub.requests]
    board = env.observe("player_0")["observation"]  # rows x columns x (mine, theirs)
    # Both answered "3": two pieces in column 3, the first at the bottom.
    assert board[:, 3].sum() == 2 and board[5, 3].sum() == 1 and board[4, 3].sum() == 1
    assert board.sum() == 2
    assert "Connect Four" in json.dumps(prompts[0]) or "connect_four" in json.dumps(prompts[0])


def test_a_parallel_multigrid_launch_gets_an_action_index_from_each_ai_player(host):
    from gym_gui.services.operator import OperatorConfig, WorkerAssignment

    with StubServer(openai_server.ok_body, openai_server.error_body, answer="forward") as stub:
        workers = {f"agent_{i}": WorkerAssignment("balrog_worker", "llm", settings(stub))
                   for i in range(4)}
        config = OperatorConfig("op_m", "M", env_name="mosaic_multigrid",
                                task="MosaicMultiGrid-S-2v2-IndAgObs-v1", workers=workers,
                                execution_mode="parallel")
        host._multi_operator_service.add_operator(config)
        host._render_tabs.add_operator_view(config)
        host._on_reset_all_operators(9)
        assert host._parallel_multiagent_mode and len(host._parallel_player_handles) == 4
        env = host._parallel_multiagent_env
        before = [tuple(agent.state.pos) for agent in env.unwrapped.agents]
        host._on_step_all_operators(9)  # blocks on each worker's answer
        after = [tuple(agent.state.pos) for agent in env.unwrapped.agents]
        observations = [request["body"]["messages"][-1]["content"] for request in stub.requests]
    assert host._parallel_step_index == 1
    assert len(observations) == 4
    # The view the GUI sends (numbers) reaches the model in words.
    assert all("You see a" in json.dumps(text) for text in observations)
    assert before != after  # "forward" was played as action 3 by the agents that could move


def test_stop_ends_every_worker(host):
    from gym_gui.services.operator import OperatorConfig

    with StubServer(openai_server.ok_body, openai_server.error_body) as stub:
        config = OperatorConfig.single_agent(
            "op_x", "X", "balrog_worker", "llm", env_name="crafter", task="CrafterReward-v1",
            settings=settings(stub), max_steps=3)
        host._multi_operator_service.add_operator(config)
        host._render_tabs.add_operator_view(config)
        host._on_reset_all_operators(1)
        handle = host._operator_launcher.get_handle("op_x")
        ready = handle.read_response(timeout=60)
        while ready and ready.get("type") == "init":
            ready = handle.read_response(timeout=60)
        assert ready and ready["type"] == "ready", ready  # MOSAIC's Crafter id is played
        host._on_stop_operators()
        assert handle.process.wait(timeout=30) is not None
        assert host._multi_operator_service.get_operator_state("op_x") == "stopped"


def test_mosaics_reader_gets_every_line_of_a_burst(host):
    """MOSAIC's reader (select, then a buffered readline) loses a line that arrives in
    the same read as the one before it; the worker hands it one line per read."""
    from gym_gui.services.operator import OperatorConfig

    with StubServer(openai_server.ok_body, openai_server.error_body) as stub:
        config = OperatorConfig.single_agent(
            "op_b", "B", "balrog_worker", "llm", env_name="babyai",
            task="BabyAI-GoToLocal-v0", settings=settings(stub), max_steps=3)
        handle = host._operator_launcher.launch_operator(config, interactive=True)
        assert handle.read_response(timeout=60)["type"] == "init"
        for _ in range(5):  # five commands at once: five answers in a burst
            handle.send_command({"cmd": "ping"})
        time.sleep(0.5)  # the GUI reads on a timer (100-200 ms): the answers wait for it
        answers = [handle.read_response(timeout=10) for _ in range(5)]
        assert [a and a["type"] for a in answers] == ["pong"] * 5
        # The last step of an episode and the episode's end come together too.
        handle.send_reset(4, max_steps=1)
        assert handle.read_response(timeout=60)["type"] == "ready"
        handle.send_step()
        time.sleep(2)
        assert handle.read_response(timeout=60)["type"] == "step"
        assert handle.read_response(timeout=10)["type"] == "episode_done"
        handle.stop()


def test_every_task_id_mosaics_operator_form_offers_is_played_or_refused_in_a_line(window):
    """The ids MOSAIC's form lists for the BALROG worker's families (its own code lists
    them: the gym registries, its fallbacks and its static lists)."""
    from gym_gui.constants.constants_operator import BALROG_SUPPORTED_ENVS
    from gym_gui.ui.widgets import operator_config_widget as form

    from balrog_worker import envs, mosaic
    from balrog_worker.config import ConfigError

    fallbacks = {"minihack": ["MiniHack-Room-5x5-v0", "MiniHack-Corridor-R5-v0"],
                 "nle": ["NetHackScore-v0", "NetHackStaircase-v0", "NetHackEat-v0"]}
    prefixes = {"babyai": "BabyAI-", "minigrid": "MiniGrid-", "minihack": "MiniHack-",
                "nle": "NetHack"}
    played, refused = 0, {}
    for family in BALROG_SUPPORTED_ENVS:
        ids = (form._get_registered_envs(prefixes[family]) or fallbacks.get(family, [])
               if family in prefixes else list(form.ENV_FAMILIES[family]))
        assert ids, family
        for task in ids:
            settings = {**mosaic.DEFAULTS, "run_id": "ids", "env_name": family, "task": task}
            try:
                config = mosaic.cell_config(settings)
            except ConfigError as error:
                assert "\n" not in str(error) and (task in str(error) or family in str(error))
                refused[task] = str(error)
                continue
            game = envs.open_game(config.cell.env, config.cell.task)
            try:
                game.reset(1)
            finally:
                game.close()
            played += 1
    assert played >= 150
    # Refused: gym's toy text games (not BALROG's, nor MOSAIC's worker's), and minigrid's
    # wave-function-collapse levels, whose pattern images minigrid's wheel lacks.
    toy_text = set(form.ENV_FAMILIES["toytext"])
    assert toy_text <= set(refused)
    assert all(task in toy_text or task.startswith("MiniGrid-WFC-") for task in refused), (
        refused)
