"""Bad input through the CLI: one line on stderr, exit 2, no traceback, nothing written."""

import pytest
from helpers import BAD_CONFIGS as BAD
from helpers import run_cli


@pytest.mark.parametrize("name,text,needle", BAD[:4] + BAD[-1:], ids=[b[0] for b in BAD[:4] + BAD[-1:]])
def test_bad_config_exits_2_with_one_line(tmp_path, name, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    result = run_cli("run", "--config", str(path), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_config_and_missing_run(tmp_path):
    result = run_cli("run", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no such file" in result.stderr and not (tmp_path / "o").exists()
    result = run_cli("report", "--run", str(tmp_path / "empty"), "--to", str(tmp_path / "rep"))
    assert result.returncode == 2 and "results.sqlite" in result.stderr and "Traceback" not in result.stderr


def test_out_path_that_is_a_file(tmp_path, tiny_config):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    result = run_cli("run", "--config", str(tiny_config), "--out", str(blocker))
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a directory"
