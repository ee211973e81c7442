"""The README's documented commands exist, and CI runs exactly its test command."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _first_block() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_opens_with_install_and_run_then_install_and_test():
    run, test = _first_block()[:2]
    assert run == "pip install -r requirements.txt && python app.py"
    assert test.startswith("pip install -r requirements.txt") and test.endswith("python -m pytest -q")


def test_ci_runs_exactly_the_readme_test_command():
    test = _first_block()[1]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()


def _documented_commands() -> list[list[str]]:
    """`python -m pkg sub` and `python app.py` lines of the Command line section."""
    section = README.split("## Command line", 1)[1].split("##", 1)[0]
    cmds = []
    for line in section.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("python "):
            words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
            head = words[:3]  # python -m pkg | python app.py ...
            for w in words[3 if words[1] == "-m" else 2:]:
                if w.startswith("-") or w.isupper():
                    break
                head.append(w)
            cmds.append(head if words[1] == "-m" else words[:2])
    return cmds


@pytest.mark.parametrize("cmd", _documented_commands(), ids=lambda c: " ".join(c))
def test_documented_command_exists_and_answers_help(cmd):
    r = subprocess.run([sys.executable, *cmd[1:], "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
