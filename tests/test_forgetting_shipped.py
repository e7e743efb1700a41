"""A story on first start (issue 18, item 8): the Continual learning page of a fresh clone shows a
finished benchmark, read from a result shipped with the models (models/continual/, tracked by
git) that `python -m optimus forgetting --seeds N --save ID` writes; shipped results are
read-only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from optimus.cli import main
from optimus.experiments import background

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "optimus" / "app" / "pages" / "continual.py"


def test_a_result_ships_with_the_models_and_git_tracks_it():
    shipped = background.list_shipped()
    assert shipped, f"no finished benchmark in {background.SHIPPED}"
    record = shipped[0]
    assert record["state"] == "done" and record["shipped"] and not record["live"]
    saved = record["result"]
    assert len(saved["seeds"]) >= 2 and {"none", "ewc"} <= set(saved["mean"]["methods"])
    assert "--save" in record["message"]
    if (REPO / ".git").exists():
        tracked = subprocess.run(["git", "ls-files", "models/continual"], cwd=REPO, capture_output=True, text=True)
        ignored = subprocess.run(["git", "check-ignore", "-q", f"models/continual/{record['id']}.json"], cwd=REPO)
        assert f"models/continual/{record['id']}.json" in tracked.stdout.split() or ignored.returncode == 1


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    from optimus.store import runs

    monkeypatch.setenv(runs.MODELS_ENV, str(tmp_path / "models"))
    return tmp_path / "models"


def test_a_fresh_models_root_lists_the_shipped_result_read_only(empty_root):
    record = background.list_shipped()[0]
    listed = background.list_runs()
    assert [r["id"] for r in listed] == [r["id"] for r in background.list_shipped()]
    assert background.read(record["id"])["shipped"]
    with pytest.raises(ValueError, match="read-only"):
        background.delete(record["id"])
    assert background.stop(record["id"]) is False
    assert (background.SHIPPED / f"{record['id']}.json").exists()
    assert not background.list_runs(shipped=False)


def test_the_continual_page_opens_on_the_shipped_result(empty_root):
    record = background.list_shipped()[0]
    at = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [i for i in at.info if "No benchmark yet" in i.value]
    assert at.selectbox(key="cl_result").value == record["id"]
    assert "Accuracy per task over time" in [h.value for h in at.subheader]
    assert not [b for b in at.button if "Delete" in b.label]


@pytest.mark.slow
def test_forgetting_save_writes_a_result_the_page_lists(empty_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(background, "SHIPPED", tmp_path / "shipped")
    code = main(["forgetting", "--tasks", "3", "5", "--methods", "none", "ewc", "--seeds", "2",
                 "--steps-per-task", "5", "--batch-size", "32", "--ewc-lambda", "100", "--save", "tiny-story"])
    assert code == 0
    assert "ACC" in capsys.readouterr().out
    record = background.read_shipped("tiny-story")
    assert record is not None and record["seeds"] == [0, 1]
    assert [r["id"] for r in background.list_runs()] == ["tiny-story"]
    at = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not at.exception and at.selectbox(key="cl_result").value == "tiny-story"
