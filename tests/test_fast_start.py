"""Commands that touch no model import no torch (issue 15: fast start). Each runs in a fresh
interpreter that reports whether torch was imported by the time the command returned."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, runpy, sys
module, argv = sys.argv[1], sys.argv[2:]
sys.argv = [module] + argv
code = 0
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print(json.dumps({"torch": "torch" in sys.modules, "ray": "ray" in sys.modules, "code": code}))
"""


def _probe(module: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, module, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["score", "--help"], ["run", "--help"],
                                  ["label", "--help"], ["bench", "--help"]])
def test_help_imports_no_torch(argv):
    got = _probe("attack", *argv)
    assert got == {"torch": False, "ray": False, "code": 0}


def test_caption_ingest_and_store_commands_import_no_torch(tmp_path):
    captions = tmp_path / "c.csv"
    captions.write_text("caption,url\na red cat,http://x/1\na blue dog,\n", encoding="utf-8")
    store = tmp_path / "s"
    assert _probe("attack", "ingest", "--store", str(store), str(captions)) == {"torch": False, "ray": False,
                                                                               "code": 0}
    assert _probe("store", "info", "--store", str(store), "--json") == {"torch": False, "ray": False, "code": 0}
    out = tmp_path / "e.csv"
    assert _probe("store", "export", "--store", str(store), "--out", str(out))["torch"] is False
    assert out.is_file()
