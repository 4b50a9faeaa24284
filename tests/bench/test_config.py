import re

import pytest
from helpers import BAD_CONFIGS as BAD

import rlhf
from bench.errors import ConfigError
from bench.sweep import config


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
                         ("start", "corner"), ("horizon", 7), ("learner_model", "regret"), ("world", 3),
                         ("fit", "all")]:
        assert config.CellConfig.from_fields(cell.fields() | {field: value}).key != cell.key, field


def test_cells_build_their_tasks(tiny_config):
    for cell in config.load(tiny_config).cells:
        task = cell.make_task()
        assert task.name == cell.task
        if cell.task == "strings":
            assert task.target == "ABC"[: cell.size]



def test_random_worlds_and_learner_models_are_axes(tmp_path):
    path = tmp_path / "worlds.toml"
    path.write_text("[random-gridworld]\nworlds = [4, 7]\nbudgets = [300]\nteachers = ['regret+oracle']\n"
                    "learner_models = ['partial', 'regret']\nseeds = 2\n")
    cells = config.load(path).cells
    assert len(cells) == 2 * 2 * 2 and len({c.key for c in cells}) == len(cells)
    assert {(c.world, c.train.learner_model) for c in cells} == {(w, m) for w in (4, 7) for m in ("partial", "regret")}
    for cell in cells:
        world = cell.make_task()
        assert isinstance(world, rlhf.RandomGridWorld) and world.seed == cell.world
        assert cell.size == world.height * world.width and cell.slip == 0.0
        assert cell.train == rlhf.RandomGridWorld.defaults.replace(budget=300, teacher="regret+oracle",
                                                                   learner_model=cell.train.learner_model)
        assert config.CellConfig.from_fields(cell.fields()) == cell
    assert config.instance_label(cells[0].fields()) == "world=4"


def test_fits_are_an_axis_and_round_is_every_cell_s_default(tmp_path):
    path = tmp_path / "fits.toml"
    table = ("[random-gridworld]\nworlds = [4]\nbudgets = [300]\nteachers = ['regret+oracle']\nseeds = 2\n"
             "learner_models = ['partial', 'advantage', 'regret']\n")
    path.write_text(table + "fits = ['round', 'all']\n")
    cells = config.load(path).cells
    assert {(c.train.learner_model, c.train.fit) for c in cells} == {
        (m, f) for m in ("partial", "advantage", "regret") for f in ("round", "all")}
    assert len({c.key for c in cells}) == len(cells) == 3 * 2 * 2
    assert list(cells[0].fields()).index("fit") == list(cells[0].fields()).index("learner_model") + 1
    path.write_text(table)
    assert {c.train.fit for c in config.load(path).cells} == {"round"}            # the presets' default
    path.write_text(table + "[random-gridworld.train]\nfit = 'all'\n")
    assert {c.train.fit for c in config.load(path).cells} == {"all"}
    for bad, message in (("fits = ['everything']\n", "random-gridworld.fits = 'everything'"),
                         ("fits = ['all']\n[random-gridworld.train]\nfit = 'all'\n", "random-gridworld.train.fit")):
        path.write_text(table + bad)
        with pytest.raises(ConfigError, match=re.escape(message)):
            config.load(path)


def test_ranking_fields_are_axes_and_equal_the_train_table(tmp_path):
    """ranks × rank_learners × ties × tie_fits are crossed (rank 2 keeps the default learner, tie model
    none the default fit), and each cell is the one a [task.train] table with those fields makes."""
    path = tmp_path / "ranks.toml"
    table = "[strings]\nsizes = [3]\nslips = [0.0]\nbudgets = [30]\nteachers = ['boltzmann:1+davidson:1']\nseeds = 2\n"
    path.write_text(table + "ranks = [2, 3]\nrank_learners = ['plackett-luce', 'pair-split']\n"
                    "ties = ['none', 'davidson']\ntie_fits = ['learned']\n")
    with pytest.raises(ConfigError, match="needs rank_learner='pair-split'|pair-split"):
        config.load(path)                                   # rank 3 with a tie model needs pair split
    path.write_text(table + "ranks = [2, 3]\nrank_learners = ['plackett-luce', 'pair-split']\n")
    cells = config.load(path).cells
    assert {(c.train.rank, c.train.rank_learner) for c in cells} == {
        (2, "plackett-luce"), (3, "plackett-luce"), (3, "pair-split")}
    assert len({c.key for c in cells}) == len(cells) == 3 * 2
    path.write_text(table + "ties = ['none', 'davidson']\ntie_fits = ['fixed', 'learned']\n")
    cells = config.load(path).cells
    assert {(c.train.ties, c.train.tie_fit) for c in cells} == {
        ("none", "fixed"), ("davidson", "fixed"), ("davidson", "learned")}
    path.write_text(table + "[strings.train]\nties = 'davidson'\ntie_fit = 'learned'\n")
    by_train = config.load(path).cells
    path.write_text(table + "ties = ['davidson']\ntie_fits = ['learned']\n")
    assert [c.key for c in config.load(path).cells] == [c.key for c in by_train]
    for bad, message in (("ranks = [1]\n", "strings.ranks = 1: must be an integer >= 2"),
                         ("ties = ['rao']\n", "strings.ties = 'rao': must be one of none, rao-kupper"),
                         ("ranks = [3]\n[strings.train]\nrank = 3\n", "strings.train.rank")):
        path.write_text(table + bad)
        with pytest.raises(ConfigError, match=re.escape(message)):
            config.load(path)


def test_environments_are_an_axis_with_their_own_horizons(tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("seals")
    path = tmp_path / "envs.toml"
    path.write_text("[[gymnasium]]\nenvs = ['FrozenLake-v1', 'Taxi-v4']\nbudgets = [100]\nteachers = ['oracle']\n"
                    "seeds = 2\n[[gymnasium]]\nenvs = ['CliffWalking-v1']\nhorizon = 40\nbudgets = [100]\n"
                    "teachers = ['oracle']\nseeds = 1\n[seals]\nenvs = ['seals/RiskyPath-v0']\nbudgets = [100]\n"
                    "teachers = ['oracle']\nseeds = 1\n")
    cells = config.load(path).cells
    assert [(c.env, c.horizon, c.size) for c in cells if c.seed == 0] == [
        ("FrozenLake-v1", 100, 17), ("Taxi-v4", 200, 501), ("CliffWalking-v1", 40, 49), ("seals/RiskyPath-v0", 5, 4)]
    for cell in cells:
        task = cell.make_task()
        assert isinstance(task, rlhf.TabularTask) and task.label == cell.env and task.name == cell.task
        assert task.horizon == cell.horizon and config.CellConfig.from_fields(cell.fields()) == cell
    assert config.instance_label(cells[0].fields()) == "FrozenLake-v1"


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


@pytest.mark.parametrize("text,field,nearest", [
    ("[gridworld]\nsize=[5]\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1", "gridworld.size = [5]", "sizes"),
    ("nmae = 'x'\n[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1", "nmae = 'x'", "name"),
    ("gridwrld = 1", "gridwrld = 1", "gridworld"),
    ("[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n[strings.train]\nepoch=5",
     "strings.train.epoch = 5", "epochs"),
], ids=["task table", "top level", "task name", "train table"])
def test_a_misspelt_key_is_unknown_and_the_nearest_key_is_suggested(tmp_path, text, field, nearest):
    path = tmp_path / "typo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert f"{path}: {field}: unknown " in message and message.endswith(f"did you mean {nearest!r}?")


def test_ranking_fields_are_a_cells_columns_only_when_set(tiny_config):
    """Pair cells keep their keys and columns; a ranking cell has all six ranking fields, round-trips
    through them, and its key differs per field (#26)."""
    cell = config.load(tiny_config).cells[0]
    assert not set(config.RANKING_COLUMNS) & set(cell.fields())
    ranked = config.CellConfig.from_fields(cell.fields() | {"rank": 4})
    assert list(ranked.fields())[-len(config.RANKING_COLUMNS):] == list(config.RANKING_COLUMNS)
    assert ranked.fields()["rank"] == 4 and config.CellConfig.from_fields(ranked.fields()) == ranked
    assert config.CellConfig.from_fields(cell.fields() | {"rank": float("nan")}) == cell   # a mixed table's NaN
    keys = {ranked.key, cell.key}
    for change in [{"rank_learner": "pair-split"}, {"rank_cost": "query"},
                   {"rank_learner": "pair-split", "ties": "rao-kupper"}]:
        keys.add(config.CellConfig.from_fields(ranked.fields() | change).key)
    assert len(keys) == 5
