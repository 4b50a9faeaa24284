import pytest

from bench import config
from bench.errors import ConfigError
from helpers import BAD_CONFIGS as BAD


def test_expansion_crosses_every_axis(tiny_config):
    sweep = config.load(tiny_config)
    grid = [c for c in sweep.cells if c.task == "gridworld"]
    strings = [c for c in sweep.cells if c.task == "strings"]
    assert len(grid) == 2 * 2 * 1 * 1 * 1 * 2 and len(strings) == 1 * 1 * 2 * 1 * 3
    assert {c.seed for c in strings} == {0, 1, 2}
    assert all(c.fields()["epochs"] == 10 and c.horizon == 6 for c in grid)
    assert all(c.fields()["optimizer"] == "sgd" and c.fields()["batch_size"] == 1 for c in strings)   # seed defaults
    assert len({c.key for c in sweep.cells}) == len(sweep.cells)


def test_hash_ignores_key_order_and_tracks_every_field(tmp_path, tiny_config):
    text = tiny_config.read_text()
    reordered = tmp_path / "reordered.toml"
    reordered.write_text(text.replace('slips = [0.0, 0.1]\nbudgets = [100]', 'budgets = [100]\nslips = [0.0, 0.1]')
                         .replace("pairs_per_round = 50\nepochs = 10", "epochs = 10\npairs_per_round = 50"))
    assert [c.key for c in config.load(reordered).cells] == [c.key for c in config.load(tiny_config).cells]
    cell = config.load(tiny_config).cells[0]
    assert config.CellConfig.from_fields(cell.fields()) == cell
    for field, value in [("lr", 0.02), ("epochs", 11), ("teacher", "oracle"), ("seed", 9), ("temperature", 2.0),
                         ("start", "corner"), ("horizon", 7)]:
        assert config.CellConfig.from_fields(cell.fields() | {field: value}).key != cell.key, field


def test_cells_build_their_tasks(tiny_config):
    for cell in config.load(tiny_config).cells:
        task = cell.make_task()
        assert task.name == cell.task
        if cell.task == "strings":
            assert task.target == "ABC"[: cell.size]



@pytest.mark.parametrize("name,text,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_configs_raise_naming_key_and_value(tmp_path, name, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "absent.toml")
