"""The README's Python snippets run as written and print what they say they print (they are the
first code a user copies).

Every block states its output: a ``# prints: TEXT`` comment on each line that prints, in order,
one printed line each. Text matches exactly; a number stated with d decimals matches a printed
number that rounds to it (``0.121`` for 0.12060527…), any other number exactly. The ``py``
block reads a person's labels in ``labels/me``: it runs where a perfect labeller (the string
with more positions matching the target, ``=`` when as many) has answered the README's session.
"""

import re

import pytest
from helpers import ROOT

BLOCKS = re.findall(r"```(?:python|py)\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
STATED = re.compile(r"#\s*prints:\s?(.*)$")
NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")


def stated_output(block: str) -> list[str]:
    """The lines a block says it prints, in order."""
    return [m.group(1).rstrip() for line in block.splitlines() if (m := STATED.search(line))]


def number_matches(printed: str, stated: str) -> bool:
    if "." not in stated or "e" in stated:
        return printed == stated
    decimals = len(stated.split(".")[1])
    try:
        return f"{float(printed):.{decimals}f}" == stated
    except ValueError:
        return False


def line_matches(printed: str, stated: str) -> bool:
    """``printed`` is ``stated`` but for numbers, which must agree to the stated precision."""
    p, s = NUMBER.split(printed), NUMBER.split(stated)
    return len(p) == len(s) and all(a == b if i % 2 == 0 else number_matches(a, b)
                                    for i, (a, b) in enumerate(zip(p, s, strict=True)))


def perfect_labeller(directory):
    """Answer the README's labelling session (``--task strings --vocab ABC --target ABC --pairs 30``)
    in ``directory`` as a perfect labeller would."""
    from bench.labelling import Session, SessionSpec
    session = Session(SessionSpec("strings", pairs=30, vocab="ABC", target="ABC"), directory)
    while not session.done:
        first, second = session.current()
        one, two = (int((t.actions == session.task.target_tokens).sum()) for t in (first, second))
        session.answer("1" if one > two else "2" if two > one else "=")
    session.close()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_prints_what_it_says(index, tmp_path, monkeypatch, capsys):
    block = BLOCKS[index]
    stated = stated_output(block)
    assert stated, f"README python block {index} does not say what it prints (# prints: ...)"
    monkeypatch.chdir(tmp_path)
    if "labels/me" in block:
        perfect_labeller(tmp_path / "labels" / "me")
    exec(compile(block, f"README.md python block {index}", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(stated) and all(map(line_matches, printed, stated)), \
        "\n".join(["printed:", *printed, "the README says:", *stated])


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


def test_a_stated_number_is_matched_to_its_precision():
    assert line_matches("{'epic': 0.12060527074564824} True", "{'epic': 0.121} True")
    assert not line_matches("{'epic': 0.1194} True", "{'epic': 0.121} True")
    assert not line_matches("-0.02 False", "0.99 True") and line_matches("FrozenLake-v1 6x5", "FrozenLake-v1 6x5")
    assert not line_matches("1.0 1.0", "1.0")
