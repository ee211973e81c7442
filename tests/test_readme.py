"""The README's documented commands exist, CI runs exactly its test command in a fresh virtualenv,
and the README and docs quote no measured figure that docs/benchmarks.md does not hold."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import launch_chromium

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
COMMANDS = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")


def _first_block() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_opens_with_install_and_run_then_install_and_test():
    run, test = _first_block()[:2]
    assert run == "pip install -r requirements.txt && python app.py"
    assert test == ("bash scripts/system_packages.sh && pip install -r requirements.txt -c constraints.txt "
                    '&& python -m pytest -q -n 2 --dist loadgroup -m "not serial" && python -m pytest -q -m serial')
    assert len(README.splitlines()) < 200


def test_ci_runs_exactly_the_readme_test_command_in_a_fresh_virtualenv():
    test = _first_block()[1]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    runs = [line for line in ci if line.startswith(test)]
    assert runs == [test + " || status=$?"], runs
    venv = [i for i, line in enumerate(ci) if "-m venv" in line]
    activate = [i for i, line in enumerate(ci) if line.startswith(". ") and "bin/activate" in line]
    assert venv and activate and venv[0] < activate[0] < ci.index(runs[0])
    assert any("mktemp -d" in line for line in ci[: venv[0] + 1]), "the virtualenv lives outside the clone"
    assert ci[-1] == 'exit "$status"'


def test_a_browser_test_without_a_browser_fails_naming_the_install_command(tmp_path):
    with pytest.raises(pytest.fail.Exception) as info:
        launch_chromium(None, chromium=str(tmp_path / "no-chromium"))
    message = str(info.value)
    assert "bash scripts/system_packages.sh" in message and "\n" not in message


def _python_lines(text: str) -> list[str]:
    """`python -m pkg ...` / `python app.py ...` lines of every code block, comments dropped."""
    lines = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                part = part.strip()
                if part.startswith("python ") and not part.startswith("python scripts/"):
                    lines.append(part)
    return lines


def _head_and_flags(line: str) -> tuple[list[str], list[str]]:
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    head = words[:3] if words[1] == "-m" else words[:2]
    for w in words[len(head):]:
        if w.startswith("-") or w.isupper() or "/" in w or "." in w or "+" in w:
            break
        head.append(w)
    flags = sorted({w.split("=")[0] for w in words if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", w)})
    return head, flags


def _documented() -> dict[str, list[str]]:
    """Each documented command (`python -m attack score`, ...) with every flag the docs give it."""
    found: dict[str, set[str]] = {}
    for line in _python_lines(README) + _python_lines(COMMANDS):
        head, flags = _head_and_flags(line)
        found.setdefault(" ".join(head), set()).update(flags)
    return {head: sorted(flags) for head, flags in sorted(found.items())}


@pytest.mark.parametrize("command", sorted(_documented()))
def test_documented_command_exists_and_takes_its_flags(command):
    head, flags = command.split(), _documented()[command]
    r = subprocess.run([sys.executable, *head[1:], "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
    missing = [f for f in flags if f not in r.stdout]
    assert not missing, f"{' '.join(head)} --help does not list {missing}"


FIGURE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|MB|GB|captions/s|x faster)\b|\b\d+\.\d+x\b|\bAUC \d")


@pytest.mark.parametrize("doc", ["README.md", "docs/commands.md", "docs/review.md", "docs/labels.md",
                                 "docs/scale.md", "docs/formats.md", "docs/architecture.md",
                                 "docs/own-model.md"])
def test_docs_quote_no_measured_figure(doc):
    text = (REPO / doc).read_text(encoding="utf-8")
    assert not FIGURE.findall(text), f"{doc} quotes measured figures: link docs/benchmarks.md instead"


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _all_help() -> dict[str, str]:
    from attack.cli import build_parser as attack_parser
    from store.__main__ import build_parser as store_parser

    texts = {}
    for prog, parser in (("attack", attack_parser()), ("store", store_parser())):
        texts[prog] = parser.format_help()
        for name, sub in _subparsers(parser):
            texts[f"{prog} {name}"] = sub.format_help()
    return texts


def test_help_texts_quote_no_measured_figure():
    for prog, text in _all_help().items():
        flat = " ".join(text.split())
        assert not FIGURE.findall(flat), f"python -m {prog} --help quotes {FIGURE.findall(flat)}"
        assert not re.search(r"about \d+ (minutes|seconds|s)\b", flat), f"python -m {prog} --help quotes a time"


def test_help_lists_every_score_kind_from_the_registry():
    from attack.scores import SCORE_NAMES

    texts = _all_help()
    for prog in ("attack score", "attack run"):
        flat = " ".join(texts[prog].split())
        assert all(kind in flat for kind in SCORE_NAMES), (prog, flat[:400])


# how a measured figure reads in a comment or docstring ("measured: about 110 s", "20x slower on this
# project's CPU", "0.4-4 ms on the development VM"); the benches' own modules describe their figures
MEASURED = re.compile(r"\(measured\b|(?<!not )\bmeasured: |\b\d+(?:\.\d+)?x (?:slower|faster)\b|on (?:the development|this "
                      r"project's) (?:VM|machine|CPU)|\babout \d+(?:\.\d+)? ?(?:s|ms|seconds|minutes)\b", re.I)


def test_comments_and_docstrings_quote_no_measured_figure():
    import io
    import tokenize

    found = []
    for path in sorted(p for layer in ("attack", "store", "review") for p in (REPO / layer).rglob("*.py")):
        if "bench" in path.parts or path.name in ("bench.py", "browser_bench.py"):
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type in (tokenize.COMMENT, tokenize.STRING) and MEASURED.search(tok.string):
                found.append(f"{path.relative_to(REPO)}:{tok.start[0]}: {MEASURED.search(tok.string).group(0)}")
    assert not found, "measured figures in code (generate them into docs/benchmarks.md):\n" + "\n".join(found)
