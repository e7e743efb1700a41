"""The README's "Demo in five minutes" quotes only measured figures (issue 22): each one is in
docs/demo-figures.json, written by `python -m optimus demo-figures`, and the README says exactly
what that file holds. The slow tests measure again and compare with the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optimus.evaluation import demo

REPO = Path(__file__).resolve().parent.parent


def _section() -> str:
    return " ".join(demo.demo_section((REPO / "README.md").read_text()).split())


def test_the_readme_demo_quotes_every_figure_of_the_figures_file():
    figures = demo.load()
    assert set(figures["sections"]) == set(demo.SECTIONS)
    section = _section()
    missing = {name: text for name, text in demo.readme_claims(figures).items() if text not in section}
    assert not missing, f"README's demo section disagrees with docs/demo-figures.json: {missing}"


def test_the_readme_demo_quotes_no_figure_the_file_does_not_hold():
    """Every decimal figure and percentage in the section is inside one of the measured claims
    (whole numbers are the pages' settings: 20 batches, 10,000 samples, 3 seeds...)."""
    section = _section()
    for text in demo.readme_claims(demo.load()).values():
        section = section.replace(text, " ")
    stray = re.findall(r"\d+\.\d+%?|\d+%", section)
    assert not stray, f"figures in the README's demo section that demo-figures does not measure: {stray}"


def test_the_continual_figures_are_the_shipped_benchmark_the_page_opens_on():
    """The Continual page opens on models/continual/factor-standard-3seeds.json: the figures
    the script quotes are that record's means, not another run's."""
    shipped, filed = demo.continual(), demo.load()["sections"]["continual"]
    assert (shipped["acc"], shipped["bwt"], shipped["seeds"]) == (filed["acc"], filed["bwt"], filed["seeds"])
    assert filed["benchmark"] == demo.SHIPPED_CONTINUAL and demo.SHIPPED_CONTINUAL in _section()


def test_claims_follow_the_figures():
    """A changed figure changes its sentence (the check above cannot pass on stale text)."""
    figures = demo.load()
    changed = json.loads(json.dumps(figures))
    changed["sections"]["overview"]["default"]["lift"] += 0.5
    changed["sections"]["continual"]["bwt"]["ewc"] = 0.5  # EWC would now forget least
    before, after = demo.readme_claims(figures), demo.readme_claims(changed)
    assert before["default lift"] != after["default lift"]
    assert after["continual least"].startswith("ewc forgets least")
    section = _section()
    assert after["default lift"] not in section


@pytest.mark.slow
def test_demo_figures_measured_again_agree_with_the_file(tmp_path):
    """`python -m optimus demo-figures overview discriminator` in a new process, on the shipped
    models: the figures the Overview and Discriminator pages show are the file's."""
    out = subprocess.run([sys.executable, "-m", "optimus", "demo-figures", "overview", "discriminator", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = json.loads(out.stdout)
    saved = demo.load()
    fresh_claims, saved_claims = demo.readme_claims(fresh), demo.readme_claims(saved)
    for name, text in fresh_claims.items():
        assert saved_claims[name] == text, name


@pytest.mark.slow
def test_the_demo_preset_still_shows_the_sieve_emerging():
    """The `demo` run measured again: the lift and the multiples of 3 per batch are the file's
    (the run is seeded; a small tolerance for floating-point order on another machine)."""
    fresh = demo.train()
    saved = demo.load()["sections"]["train"]
    assert fresh["lift"] == pytest.approx(saved["lift"], abs=0.1)
    assert fresh["multiples_of_3_vs_chance"] == pytest.approx(saved["multiples_of_3_vs_chance"], abs=0.05)
    # what the script says happens on screen, whatever the exact figures
    assert fresh["lift"][-1] > 3 * fresh["lift"][0]
    assert fresh["multiples_of_3_vs_chance"][0] > 0.5 > 0.25 > fresh["multiples_of_3_vs_chance"][9]
