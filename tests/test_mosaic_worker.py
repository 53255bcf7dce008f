"""MOSAIC's own launcher command, batch and interactive, against a loopback server that
speaks OpenAI's wire format: every event type and field MOSAIC reads, its telemetry
files, and the key it passes in argv appearing nowhere."""

import json
import os
import subprocess
import sys

import pytest

from tests.stubs import StubServer, openai_server

KEY = "sk-mosaic-argv-key-0123456789abcdef"
STEP_FIELDS = {"run_id", "episode_id", "step_index", "observation", "action", "reward",
               "terminated", "truncated", "info", "llm_response", "llm_input_tokens",
               "llm_output_tokens", "timestamp"}
EPISODE_FIELDS = {"run_id", "episode_id", "episode_index", "env_name", "task", "total_reward",
                  "num_steps", "terminated", "truncated", "success", "start_time", "end_time",
                  "duration_seconds", "llm_calls", "total_input_tokens", "total_output_tokens"}


def launcher(stub, tmp_path, env, task, *extra, episodes=2, steps=3):
    """MOSAIC's command line as its operator_launcher builds it."""
    return [sys.executable, "-m", "balrog_worker.cli", "--run-id", "run-1", "--env", env,
            "--task", task, "--client", "openai", "--model", "gpt-test", "--agent-type",
            "naive", "--num-episodes", str(episodes), "--max-steps", str(steps),
            "--temperature", "0.7", "--telemetry-dir", str(tmp_path / "telemetry"), "-v",
            "--base-url", f"{stub.url}/v1", "--api-key", KEY, "--max-image-history", "0",
            "--render-mode", "rgb_array", *extra]


def clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**env, "BALROG_WORKER_CACHE": str(tmp_path / "cache")}


def assert_key_nowhere(tmp_path, *texts):
    for text in texts:
        assert KEY not in text
    for path in tmp_path.rglob("*"):
        if path == tmp_path / "config.json":
            continue  # the input MOSAIC wrote, the key's only place
        if path.is_file() and path.suffix in (".jsonl", ".json", ".log", ".txt"):
            assert KEY not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(("env", "task", "answer"), [
    ("babyai", "BabyAI-GoToRedBall-v0", "go forward"),  # MOSAIC's default, a stock id
    ("babyai", "BabyAI-MixedTrainLocal-v0/goto", "turn left"),  # BALROG's task name
    ("minihack", "MiniHack-MazeWalk-9x9-v0", "north"),
    ("crafter", "default", "Move West"),
])
def test_batch_mode_runs_mosaics_command_and_emits_its_events(env, task, answer, tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer=answer) as stub:
        result = subprocess.run(launcher(stub, tmp_path, env, task), capture_output=True,
                                text=True, timeout=300, env=clean_env(tmp_path))
        sent = stub.requests
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    episodes = [e for e in events if e["type"] == "episode"]
    assert len(episodes) == 2 and len(steps) == sum(e["num_steps"] for e in episodes)
    assert all(set(e) >= STEP_FIELDS for e in steps)
    assert all(set(e) >= EPISODE_FIELDS for e in episodes)
    assert {e["episode_id"] for e in episodes} == {"run-1-ep000000", "run-1-ep000001"}
    assert all(e["action"] == answer and e["llm_response"] == answer for e in steps)
    assert all(e["env_name"] == env and e["task"] == task for e in episodes)
    assert sent and all(r["body"]["model"] == "gpt-test" for r in sent)
    # Telemetry files: the same events, a line each.
    telemetry = tmp_path / "telemetry"
    on_disk = [json.loads(line) for line in (telemetry / "run-1_steps.jsonl").open()]
    assert [e["step_index"] for e in on_disk] == [e["step_index"] for e in steps]
    assert len((telemetry / "run-1_episodes.jsonl").read_text().splitlines()) == 2
    # Our own records underneath, the source of truth.
    assert (telemetry / "run-1").is_dir() and list((telemetry / "run-1").rglob("episodes.jsonl"))
    # The key came in argv: the server saw it, nothing written or printed holds it.
    assert all(r["headers"].get("authorization") == f"Bearer {KEY}" for r in sent)
    assert_key_nowhere(tmp_path, result.stdout, result.stderr)


def test_no_jsonl_writes_no_telemetry_files(tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="go forward") as stub:
        result = subprocess.run(launcher(stub, tmp_path, "babyai", "goto", "--no-jsonl",
                                         episodes=1, steps=2),
                                capture_output=True, text=True, timeout=300,
                                env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list((tmp_path / "telemetry").glob("run-1_*.jsonl"))
    assert any(json.loads(line)["type"] == "episode" for line in result.stdout.splitlines())


def test_an_unknown_task_is_one_error_event_and_a_one_line_message(tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="x") as stub:
        result = subprocess.run(launcher(stub, tmp_path, "babyai", "BabyAI-Nope-v0"),
                                capture_output=True, text=True, timeout=120,
                                env=clean_env(tmp_path))
    assert result.returncode == 1  # MOSAIC's worker exits 1 on a config error
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["type"] == "error" and "BabyAI-Nope-v0" in event["message"]
    assert "balrog-worker envs" in event["message"]
    assert_key_nowhere(tmp_path, result.stdout, result.stderr)


MULTIGRID_CONFIG = {
    "run_id": "mg-1", "env_name": "multigrid", "task": "MultiGrid-Soccer-v0",
    "client_name": "openai", "model_id": "gpt-test", "agent_type": "naive",
    "num_episodes": 1, "max_steps": 3, "temperature": 0.5, "api_key": KEY,
    "emit_jsonl": True, "seed": 3, "max_image_history": 0, "agent_id": 0,
    "observation_mode": "egocentric", "coordination_level": 3, "role": "defender",
}


@pytest.mark.parametrize("nested", [False, True])
def test_a_mosaic_config_json_runs_a_multigrid_cell(nested, tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="forward") as stub:
        config = {**MULTIGRID_CONFIG, "base_url": f"{stub.url}/v1",
                  "telemetry_dir": str(tmp_path / "telemetry")}
        if nested:  # as MOSAIC's run configs hold a worker's config
            config = {"metadata": {"worker": {"config": config}}}
        (tmp_path / "config.json").write_text(json.dumps(config))
        result = subprocess.run([sys.executable, "-m", "balrog_worker.cli", "--config",
                                 str(tmp_path / "config.json")], capture_output=True, text=True,
                                timeout=300, env=clean_env(tmp_path))
        prompts = [r["body"]["messages"][0]["content"] for r in stub.requests]
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    assert {e["info"]["agent_id"] for e in steps} == {"agent_0", "agent_1"}
    assert len(steps) == 2 * 3 and all(e["action"] == "forward" for e in steps)
    assert any("Your role: DEFENDER" in p for p in prompts)  # MOSAIC's role, level 3
    assert_key_nowhere(tmp_path, result.stdout, result.stderr)


def _as_in_a_terminal() -> None:
    """Ctrl-C's default in the worker, as a terminal gives it: a suite run as a background
    job (CI) passes SIGINT on ignored, and Python then leaves it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Interactive:
    def __init__(self, command, env):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env,
                                        preexec_fn=_as_in_a_terminal)

    def read(self) -> dict:
        return json.loads(self.process.stdout.readline())

    def send(self, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.process.stdin.write(data + b"\n")
        self.process.stdin.flush()

    def ask(self, payload) -> dict:
        self.send(payload)
        return self.read()


def test_interactive_mode_speaks_mosaics_protocol(tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="go forward") as stub:
        command = launcher(stub, tmp_path, "babyai", "BabyAI-GoToRedBall-v0", "--interactive",
                           episodes=1, steps=2)
        session = Interactive(command, clean_env(tmp_path))
        try:
            init = session.read()
            assert init["type"] == "init" and init["run_id"] == "run-1" and init["version"]
            assert session.ask({"cmd": "step"})["type"] == "error"  # before reset
            assert session.ask(b"{not json")["type"] == "error"
            assert session.ask({"cmd": "fly"})["type"] == "error"
            ready = session.ask({"cmd": "reset", "seed": 7})
            assert ready["type"] == "ready" and ready["seed"] == 7 and ready["observation"]
            step = session.ask({"cmd": "step"})
            assert step["type"] == "step" and set(step) >= STEP_FIELDS
            assert {"episode_index", "client_name", "model_id", "agent_type"} <= set(step)
            payload = step["render_payload"]
            assert payload["mode"] == "rgb" and payload["width"] > 0 and payload["height"] > 0
            assert len(payload["rgb"]) == payload["height"]
            assert len(payload["rgb"][0]) == payload["width"] and len(payload["rgb"][0][0]) == 3
            step = session.ask({"cmd": "step"})  # the cap: the episode ends
            done = session.read()
            assert done["type"] == "episode_done" and set(done) >= EPISODE_FIELDS
            assert done["num_steps"] == 2
            assert session.ask({"cmd": "step"})["type"] == "step"  # a new episode began
            assert session.ask({"cmd": "ping"})["type"] == "pong"
            assert session.ask({"cmd": "stop"})["type"] == "stopped"
            assert session.process.wait(timeout=30) == 0
            stderr = session.process.stderr.read().decode()
        finally:
            session.process.kill()
    assert_key_nowhere(tmp_path, stderr)


def test_action_selector_mode_for_a_multigrid_player(tmp_path):
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="pickup") as stub:
        config = {**MULTIGRID_CONFIG, "base_url": f"{stub.url}/v1",
                  "telemetry_dir": str(tmp_path / "telemetry")}
        (tmp_path / "config.json").write_text(json.dumps(config))
        session = Interactive([sys.executable, "-m", "balrog_worker.cli", "--config",
                               str(tmp_path / "config.json"), "--interactive"],
                              clean_env(tmp_path))
        try:
            assert session.read()["type"] == "init"
            ready = session.ask({"cmd": "init_agent", "game_name": "multigrid",
                                 "player_id": "agent_0"})
            assert ready == {"type": "agent_ready", "run_id": "mg-1", "game_name": "multigrid",
                             "player_id": "agent_0", "mode": "action_selector"}
            chosen = session.ask({"cmd": "select_action", "player_id": "agent_0",
                                  "observation": "The ball is 1 step forward."})
            assert chosen["type"] == "action_selected" and chosen["action_str"] == "pickup"
            assert chosen["action"] == 4  # pickup's index in mosaic-multigrid
            assert {"reasoning", "input_tokens", "output_tokens", "timestamp"} <= set(chosen)
            assert session.ask({"cmd": "stop"})["type"] == "stopped"
        finally:
            session.process.kill()
        prompts = [r["body"]["messages"][0]["content"] for r in stub.requests]
    assert "You are playing MultiGrid Soccer" in prompts[0]


def test_the_seeds_config_runs_verbatim_and_its_workers_are_all_in_flight():
    from balrog_worker.worker_config import mosaic_cell_config

    config = mosaic_cell_config({
        "worker": "balrog", "model": "claude-3-5-sonnet-20241022", "backend": "anthropic",
        "environment": "MiniHack-River-v0", "num_episodes": 100, "max_steps": 1000,
        "history_window": 4, "parallel_workers": 4})
    assert (config.cell.env, config.cell.task, config.agent.max_text_history) == (
        "minihack", "river", 4)
    wide = mosaic_cell_config({"worker": "balrog", "model": "m", "backend": "openai",
                               "environment": "babyai/goto", "num_episodes": 100,
                               "parallel_workers": 64})
    assert wide.parallel_episodes == wide.model.concurrency == wide.calls_in_flight() == 64


def slow_answer(body: dict) -> str:
    import time

    time.sleep(0.05)  # episodes stay in flight long enough to be cut by a stop
    return "go forward"


def test_sigterm_in_batch_mode_keeps_finished_episodes_and_a_rerun_duplicates_nothing(
        tmp_path):
    """MOSAIC's Stop sends SIGTERM. Episodes cut short had already streamed steps to the
    telemetry files; the rerun plays them again, so their old lines must go."""
    import signal

    telemetry = tmp_path / "telemetry"
    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer_fn=slow_answer) as stub:
        command = launcher(stub, tmp_path, "babyai", "BabyAI-GoToRedBall-v0", episodes=8,
                           steps=12)
        log = tmp_path / "stderr.txt"  # -v logs every request: a pipe unread would fill
        with log.open("w") as stderr_file:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr_file,
                                       env=clean_env(tmp_path))
        try:
            for line in process.stdout:  # until the first episode is committed
                if json.loads(line)["type"] == "episode":
                    break
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
        finally:
            process.kill()
        stderr = log.read_text()
        assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr
        assert "terminated (SIGTERM)" in stderr and "finished episodes are kept" in stderr
        before = [json.loads(x) for x in (telemetry / "run-1_steps.jsonl").open()]
        committed = {json.loads(x)["episode_index"]
                     for x in (telemetry / "run-1" / "episodes.jsonl").open()}
        assert {s["episode_index"] for s in before} - committed, "no episode was cut short"
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=300,
                               env=clean_env(tmp_path))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    steps = [json.loads(x) for x in (telemetry / "run-1_steps.jsonl").open()]
    episodes = [json.loads(x) for x in (telemetry / "run-1_episodes.jsonl").open()]
    keys = [(s["episode_index"], s["step_index"], s["agent_id"]) for s in steps]
    assert len(keys) == len(set(keys)) == sum(e["num_steps"] for e in episodes)
    assert sorted(e["episode_index"] for e in episodes) == list(range(8))


def test_interactive_mode_ends_cleanly_on_a_closed_stdout_and_on_ctrl_c(tmp_path):
    import signal
    import time

    with StubServer(openai_server.ok_body, openai_server.error_body) as stub:
        command = launcher(stub, tmp_path, "babyai", "BabyAI-GoToRedBall-v0", "--interactive")
        # The reader goes away: the next answer has nowhere to go.
        session = Interactive(command, clean_env(tmp_path))
        try:
            assert session.read()["type"] == "init"
            session.process.stdout.close()
            session.send({"cmd": "ping"})
            assert session.process.wait(timeout=30) == 1
            stderr = session.process.stderr.read().decode()
        finally:
            session.process.kill()
        assert "stdout was closed" in stderr and "Traceback" not in stderr
        assert "Exception ignored" not in stderr
        # Ctrl-C while the worker waits for a command, none coming.
        session = Interactive(command, clean_env(tmp_path))
        try:
            assert session.read()["type"] == "init"
            session.process.send_signal(signal.SIGINT)
            started = time.monotonic()
            assert session.process.wait(timeout=10) == 130
            waited = time.monotonic() - started
            stderr = session.process.stderr.read().decode()
        finally:
            session.process.kill()
        assert "interrupted" in stderr and "Traceback" not in stderr and waited < 5


def test_python_m_cli_with_no_arguments_is_mosaics_command_line(tmp_path):
    """MOSAIC's worker tests run its main([]) and expect exit 1 for the missing run id."""
    result = subprocess.run([sys.executable, "-m", "balrog_worker.cli"], capture_output=True,
                            text=True, timeout=120, env=clean_env(tmp_path))
    assert result.returncode == 1
    event = json.loads(result.stdout)
    assert event["type"] == "error" and "--run-id is required" in event["message"]
    missing = subprocess.run([sys.executable, "-m", "balrog_worker.cli", "--config",
                              str(tmp_path / "nowhere.json")], capture_output=True, text=True,
                             timeout=120, env=clean_env(tmp_path))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def dummy_session(tmp_path, env, task, *extra) -> Interactive:
    """An interactive worker whose agent asks no model (MOSAIC's dummy agent type)."""
    return Interactive([sys.executable, "-m", "balrog_worker.cli", "--run-id", "d-1", "--env",
                        env, "--task", task, "--agent-type", "dummy", "--telemetry-dir",
                        str(tmp_path / "telemetry"), "--render-mode", "rgb_array",
                        "--interactive", *extra], clean_env(tmp_path))


def test_a_reset_restarts_the_episode_count_and_takes_the_guis_step_cap(tmp_path):
    session = dummy_session(tmp_path, "babyai", "BabyAI-GoToLocal-v0", "--max-steps", "50")
    try:
        assert session.read()["type"] == "init"
        step = session.ask({"cmd": "step"})
        assert step["type"] == "error" and "not initialized" in step["message"].lower()
        ready = session.ask({"cmd": "reset", "seed": 4, "max_steps": 1})
        assert (ready["episode_index"], ready["render_payload"]["width"]) == (0, 256)
        assert session.ask({"cmd": "step"})["episode_index"] == 0
        done = session.read()  # the GUI's cap of 1 step, not the launch's 50
        assert done["type"] == "episode_done" and done["num_steps"] == 1
        assert session.ask({"cmd": "step"})["episode_index"] == 1
        session.read()  # its episode_done
        session.ask({"cmd": "reset", "seed": 4})
        assert session.ask({"cmd": "step"})["episode_index"] == 0  # counted again
        bad = session.ask({"cmd": "reset", "seed": -1})
        assert bad["type"] == "error" and "seed" in bad["message"]
    finally:
        session.process.kill()


def test_one_step_event_per_step_for_a_game_of_several_players(tmp_path):
    session = dummy_session(tmp_path, "multigrid", "MultiGrid-Collect-v0")
    try:
        session.read()
        ready = session.ask({"cmd": "reset", "seed": 2})
        payload = ready["render_payload"]
        assert (payload["height"], payload["width"]) == (len(payload["rgb"]),
                                                         len(payload["rgb"][0]))
        step = session.ask({"cmd": "step"})
        assert step["type"] == "step" and step["step_index"] == 0
        assert [part["agent_id"] for part in step["agents"]] == [
            "agent_0", "agent_1", "agent_2"]
        assert step["reward"] == sum(part["reward"] for part in step["agents"])
        # The next line answers the next command: no other step event came in between.
        assert session.ask({"cmd": "ping"})["type"] == "pong"
    finally:
        session.process.kill()


def test_a_game_the_gui_owns_is_played_by_choosing_only(tmp_path):
    batch = subprocess.run(
        [sys.executable, "-m", "balrog_worker.cli", "--run-id", "pz", "--env", "pettingzoo",
         "--task", "connect_four_v3", "--agent-type", "dummy"], capture_output=True,
        text=True, timeout=120, env=clean_env(tmp_path))
    assert batch.returncode == 1 and "--interactive" in json.loads(batch.stdout)["message"]
    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer="Column three is open.\n3") as stub:
        session = Interactive(
            [sys.executable, "-m", "balrog_worker.cli", "--run-id", "pz", "--env",
             "pettingzoo", "--task", "connect_four_v3", "--client", "openai", "--model",
             "gpt-test", "--base-url", f"{stub.url}/v1", "--api-key", KEY, "--interactive",
             "--telemetry-dir", str(tmp_path / "telemetry")], clean_env(tmp_path))
        try:
            session.read()
            owned = session.ask({"cmd": "reset", "seed": 1})
            assert owned["type"] == "error" and "GUI owns" in owned["message"]
            before = session.ask({"cmd": "select_action", "observation": "board",
                                  "player_id": "player_0"})
            assert before["type"] == "error" and "not initialized" in before["message"].lower()
            ready = session.ask({"cmd": "init_agent", "game_name": "connect_four_v3",
                                 "player_id": "player_0"})
            assert ready["mode"] == "action_selector"
            chosen = session.ask({"cmd": "select_action", "observation": "an empty board",
                                  "player_id": "player_0", "info": {"legal_moves": []}})
            assert (chosen["action"], chosen["action_str"], chosen["valid"]) == (3, "3", True)
            assert chosen["reasoning"] == "Column three is open."
            masked = session.ask({"cmd": "select_action", "observation": "column 3 full",
                                  "player_id": "player_0",
                                  "action_mask": [1, 1, 1, 0, 1, 1, 1]})
            assert (masked["action"], masked["valid"]) == (0, False) and masked["defaulted"]
        finally:
            session.process.kill()
        prompt = json.dumps(stub.requests[0]["body"]["messages"])
    assert "connect_four_v3" in prompt and "0 to 6" in prompt


@pytest.mark.parametrize(("env", "task", "family"), [
    ("crafter", "CrafterReward-v1", ("crafter", "default")),
    ("crafter", "CrafterNoReward-v1", ("crafter", "default")),
    ("nle", "NetHackScore-v0", ("nethack", "NetHackScore-v0")),
    ("nle", "NetHackChallenge-v0", ("nethack", "challenge")),
    ("mosaic_multigrid", "MosaicMultiGrid-S-2v2-IndAgObs-v1", ("multigrid", "soccer")),
])
def test_the_task_ids_mosaics_form_offers_are_played(env, task, family):
    from balrog_worker import mosaic

    settings = {**mosaic.DEFAULTS, "run_id": "ids", "env_name": env, "task": task}
    config = mosaic.cell_config(settings)
    assert (config.cell.env, config.cell.task) == family


def test_an_nle_task_beyond_balrogs_plays():
    from balrog_worker import envs

    game = envs.open_game("nethack", "NetHackScore-v0")
    try:
        [player] = game.players
        first = game.reset(1)[player].text
        actions = game.actions(player)
        assert "north" in actions and "eat" in actions and "pray" not in actions  # reduced set
        assert len(actions) < len(envs.open_game("nethack", "challenge").actions(player))
        turn = game.step({player: "north"})
        assert first and turn is not None
    finally:
        game.close()
