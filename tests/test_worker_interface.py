"""The MOSAIC worker interface: a seed-shaped JSON cell streamed as JSONL, and `serve`."""

import json
import subprocess
import sys
from pathlib import Path

from .conftest import run_cli

EXE = str(Path(sys.executable).parent / "balrog-worker")


def test_a_mosaic_config_streams_every_record_as_one_json_line(tmp_path):
    config = {"worker": "balrog", "model": "random", "backend": "random",
              "environment": "MultiGrid-Soccer-v0", "num_episodes": 2, "max_steps": 6,
              "history_window": 4, "parallel_workers": 2, "coordination_level": 3,
              "observation_mode": "visible_teammates", "role": "defender"}
    (tmp_path / "cell.json").write_text(json.dumps(config))
    result = run_cli("run", "--config", str(tmp_path / "cell.json"), "--out",
                     str(tmp_path / "out"), "--emit-jsonl", cwd=tmp_path)
    records = [json.loads(line) for line in result.stdout.splitlines()]  # every line parses
    kinds = [r["type"] for r in records]
    assert kinds.count("episode") == 2 and kinds.count("step") == 2 * 6 * 2  # 2 players
    episodes = [r for r in records if r["type"] == "episode"]
    assert all(e["roles"] == {"agent_0": "defender", "agent_1": "forward"} for e in episodes)
    assert all(e["coordination_level"] == 3 for e in episodes)
    assert "episode" in result.stderr  # progress goes to stderr, never stdout
    on_disk = (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()
    assert len(on_disk) == 2


def test_a_bad_mosaic_config_is_one_line_naming_the_field(tmp_path):
    (tmp_path / "cell.json").write_text(json.dumps(
        {"model": "random", "backend": "random", "environment": "babyai/goto",
         "num_episodes": -3}))
    result = run_cli("run", "--config", str(tmp_path / "cell.json"), "--out",
                     str(tmp_path / "out"), cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "num_episodes: -3 is less than the minimum of 1" in result.stderr
    assert not (tmp_path / "out").exists()


def test_serve_drives_a_whole_episode(tmp_path):
    process = subprocess.Popen([EXE, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)

    def ask(command: dict) -> dict:
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    try:
        assert ask({"cmd": "ping"}) == {"ok": True, "pong": True}
        assert ask({"cmd": "step", "action": "go forward"})["ok"] is False  # before init
        init = ask({"cmd": "init", "config": {
            "worker": "balrog", "model": "scripted", "backend": "scripted",
            "environment": "babyai/pickup", "num_episodes": 1, "max_steps": 64,
            "history_window": 4, "parallel_workers": 1}})
        assert init["ok"] and "pick up" in init["actions"]
        first = ask({"cmd": "reset", "seed": 5})
        assert "Your goal is to pick up" in first["instructions"] and first["observation"]
        for _ in range(64):
            chosen = ask({"cmd": "select_action"})
            assert chosen["ok"] and chosen["valid"]
            outcome = ask({"cmd": "step", "action": chosen["action"]})
            if outcome["terminated"] or outcome["truncated"]:
                break
        assert outcome["terminated"] and outcome["progression"] == 1.0
        assert ask({"cmd": "fly"})["error"].startswith("ValueError: unknown command 'fly'")
        assert ask({"cmd": "stop"}) == {"ok": True, "stopped": True}
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
