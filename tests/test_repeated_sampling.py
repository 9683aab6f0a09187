"""AIME 2024 with --samples 4 through the plugin: avg@4, pass@k and maj@k against values worked out by hand.

The benchmark file is the real one (benchmarks/test_aime24.py), the problems the first three upstream rows
(tests/data/benchmarks/aime24, ids 60, 61, 62), the engine a script that answers by (problem, sample).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_html_report import Browser, browser, no_network  # noqa: F401  (the real-browser fixture)

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "benchmarks"

# Sample answers per problem (gold: 60 -> 204, 61 -> 113, 62 -> 371).
ANSWERS = {
    "60": ["204", "204", "17", "204"],  # c = 3
    "61": ["5", "113", "5", "9"],  # c = 1; the majority (5) is wrong
    "62": ["1", "2", "3", "4"],  # c = 0
}
CONFTEST = f"""
from tir_harness.engines.scripted import ScriptedEngine

ANSWERS = {ANSWERS!r}

def pytest_tir_make_engine(config, model):
    def respond(request):
        problem, sample = request.request_id.split("#")[:2]  # aime24/test/60#s2#t0
        return "So the answer is \\\\boxed{{" + ANSWERS[problem.rsplit("/", 1)[1]][int(sample[1:])] + "}}."
    return ScriptedEngine(respond)
"""

# Worked out by hand.
# avg@4: the mean of 3/4, 1/4 and 0.
AVG = (3 / 4 + 1 / 4 + 0) / 3
# pass@k = 1 - C(4-c, k) / C(4, k): k=1 is c/4; k=2: 60 -> 1 - 0/6, 61 -> 1 - 3/6, 62 -> 0; k=4: 1, 1, 0.
PASS = {"1": AVG, "2": (1 + 0.5 + 0) / 3, "4": (1 + 1 + 0) / 3}
# maj@k over disjoint blocks of k samples, ties split evenly: k=2: 60 -> [204 204] 1, [17 204] 1/2;
# 61 -> [5 113] 1/2, [5 9] 0; 62 -> 0.  k=4: 60 -> 204 wins; 61 -> 5 wins (2 of 4); 62 -> a tie of wrongs.
MAJ = {"1": AVG, "2": ((1 + 0.5) / 2 + (0.5 + 0) / 2 + 0) / 3, "4": (1 + 0 + 0) / 3}


def wilson(p: float, n: int, z: float = 1.959963984540054) -> list[float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


@pytest.fixture(scope="module")
def aime_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = tmp_path_factory.mktemp("aime")
    shutil.copy(REPO / "benchmarks" / "test_aime24.py", project / "test_aime24.py")
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "pytest.ini").write_text("[pytest]\n")
    args = ["-p", "no:cacheprovider", f"--data-dir={DATA}", "--samples=4", "-k", "60 or 61 or 62",
            f"--store-dir={project / 'store'}", f"--report-dir={project / 'run'}", "--model=scripted",
            "--prompt-format=plain"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert (project / "run" / "summary.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return project / "run", done.stdout


def test_aime24_with_four_samples_reports_avg_pass_and_maj_at_k(aime_run: tuple[Path, str]) -> None:
    run, stdout = aime_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["records"] == 12
    avg = summary["avg_at_k"]
    assert (avg["k"], avg["k_min"], avg["n"]) == (4, 4, 3)
    assert avg["value"] == pytest.approx(AVG) and avg["ci"] == pytest.approx(wilson(AVG, 3))
    assert {k: v["value"] for k, v in summary["pass_at_k"].items()} == pytest.approx(PASS)
    assert {k: v["value"] for k, v in summary["maj_at_k"].items()} == pytest.approx(MAJ)
    # The test's verdict is the majority answer: right for 60 only.
    assert "1 passed" in stdout and "2 failed" in stdout
    # The terminal summary shows them.
    assert "avg@4    33.3%" in stdout and "pass@k" in stdout and "maj@k" in stdout


def test_the_html_report_shows_avg_at_k(aime_run: tuple[Path, str], browser: Browser) -> None:  # noqa: F811
    run, _ = aime_run
    page = browser.open(run / "report.html")
    caption = page.locator("caption", has_text="Several samples").inner_text()
    assert "avg@4 33.3%" in caption
    rows = [
        r.inner_text().split("\t") for r in page.locator("table:has(caption:text('Several samples')) tbody tr").all()
    ]
    assert [r[:3] for r in rows] == [
        ["k = 1", "33.3%", "33.3%"],
        ["k = 2", "50.0%", "33.3%"],
        ["k = 4", "66.7%", "33.3%"],
    ]
    no_network(page, run / "report.html")
