"""report.html: what the page holds (statically), and what it does in a real headless Chromium.

The browser tests load the page of a real run: two scripted-engine runs through the plugin (a baseline, then a
run compared with it), with hostile model output, LaTeX and code.  They need Debian's `chromium` and the
`playwright` package (the dev extra); Playwright drives the system browser, it never downloads one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tir_harness.analysis.html import ASSETS, REPORT_HTML, embed_json, page_data, render_html
from tir_harness.analysis.report import write_summary
from tir_harness.analysis.summary import summarize
from tir_harness.cli.report import main as report_main

from .test_summary import record, small_run

CHROMIUM = os.environ.get("TIR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = "</script><script>alert(1)</script><!-- <img src=x onerror=alert(2)> & \u2028 end"


# ------------------------------------------------------------------------------------- the page as text


class Page(HTMLParser):
    """Every tag with its attributes, every script's text and every style's text, as a browser parses them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: str | None = None
        self._attrs: dict[str, str | None] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open, self._attrs = tag, dict(attrs)
            (self.scripts.append((self._attrs, "")) if tag == "script" else self.styles.append(""))

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts[-1] = (self._attrs, self.scripts[-1][1] + data)
        elif self._open == "style":
            self.styles[-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None


def hostile_run() -> list[dict[str, Any]]:
    records = small_run()
    records[0] = {**records[0], "question": HOSTILE, "prediction": HOSTILE, "grade_reason": HOSTILE}
    records[0]["turns"][0]["text"] = HOSTILE + " \ud800 lone surrogate"
    return records


def test_embedded_json_cannot_end_its_script_and_reads_back() -> None:
    value = {"text": HOSTILE, "lone": "\ud800", "nested": [HOSTILE, None, 1.5]}
    text = embed_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def test_hostile_records_stay_data(tmp_path: Path) -> None:
    records = hostile_run()
    write_summary(tmp_path, records, plots=False)
    page = Page((tmp_path / REPORT_HTML).read_text(encoding="utf-8"))
    # Exactly our four scripts: the data, KaTeX, its auto-render, ours; the model's text opened none.
    assert [attrs.get("type") for attrs, _ in page.scripts] == ["application/json", None, None, None]
    assert not any(tag == "img" for tag, _ in page.tags)
    data = json.loads(page.scripts[0][1])
    first = next(i for i, row in enumerate(data["rows"]) if row[data["columns"].index("prediction")] == HOSTILE)
    assert data["questions"][data["rows"][first][data["columns"].index("question")]] == HOSTILE
    assert data["details"][first]["t"][0][0].startswith(HOSTILE)


def test_no_source_or_link_leaves_the_page(tmp_path: Path) -> None:
    records = small_run()
    baseline = [dict(r, correct=not r["correct"], run_id="old") for r in records]
    write_summary(tmp_path, records, baseline=baseline, plots=False)
    page = Page((tmp_path / REPORT_HTML).read_text(encoding="utf-8"))
    links = [(tag, name, value) for tag, attrs in page.tags for name, value in attrs.items() if name in ("src", "href")]
    assert links, "the page has in-page links (#overview, #problems)"
    assert all(str(value).startswith(("#", "data:")) for _, _, value in links), links
    urls = [u.strip("'\" ") for style in page.styles for u in re.findall(r"url\(([^)]*)\)", style)]
    assert urls and all(u.startswith("data:") for u in urls), [u[:40] for u in urls if not u.startswith("data:")]
    assert not any(tag in ("link", "iframe", "object", "embed", "base") for tag, _ in page.tags)
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in str(csp)


def test_the_overview_shows_the_summary_numbers(tmp_path: Path) -> None:
    # small_run: algebra level 1 is 3/4, level 2 is 1/2; geometry level 1 is 0/4; 4/10 overall.
    text = render_html(summarize(small_run()), small_run())
    assert re.search(r'id="headline-accuracy">40\.0%<', text)
    assert 'title="algebra, level 1: 75.0%, 95% CI [30.1, 95.4]; 4 problems, 3/4 trajectories correct"' in text
    assert 'title="geometry, level 1: 0.0%, 95% CI [0.0, 49.0]; 4 problems, 0/4 trajectories correct"' in text
    assert "geometry, level 2" not in text  # no problem there: an empty cell, no made-up number


def test_the_reference_grader_is_shown_when_the_records_carry_it() -> None:
    records = [dict(r, reference_correct=True) for r in small_run()]
    summary = summarize(records)
    if not summary.get("reference_grader"):
        pytest.fail("summarize() no longer reports reference_grader: update html._reference")
    assert re.search(r'id="reference-accuracy">100\.0%<', render_html(summary, records))
    assert 'id="reference-accuracy"' not in render_html(summarize(small_run()), small_run())


def test_page_data_puts_the_baseline_beside_each_flip() -> None:
    records = small_run()
    baseline = [dict(r, correct=not r["correct"], prediction="old", run_id="old") for r in records[:3]]
    summary = write_summary_dict(records, baseline)
    data = page_data(records, summary["comparison"], baseline)
    flip = data["columns"].index("flip")
    flipped = {data["rows"][int(i)][0]: data["rows"][int(i)][flip] for i in data["baseline"]}
    assert flipped == {
        r["problem_id"]: "gained" if r["correct"] else "lost" for r in records[:3]
    }
    assert {b["p"] for b in data["baseline"].values()} == {"old"}


def write_summary_dict(records: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    from tir_harness.analysis.compare import compare

    summary = summarize(records)
    summary["comparison"] = compare(records, baseline).to_dict()
    return summary


def test_the_page_script_renders_every_kind_of_cell() -> None:
    from tir_harness.records import fields

    script = (ASSETS / "report.js").read_text(encoding="utf-8")
    block = script.split("var CELLS = {", 1)[1].split("\n  };", 1)[0]
    assert set(re.findall(r"^    (\w+): \{", block, re.MULTILINE)) == set(fields.CELLS)


def test_accuracy_png_is_a_heatmap_of_the_summary() -> None:
    from matplotlib.image import AxesImage

    from tir_harness.analysis.plots import _heatmap, _new_figure

    acc = summarize(small_run())["accuracy"]
    figure = _new_figure(8, 4)
    _heatmap(figure, acc, ["1", "2"])
    (image,) = [c for ax in figure.axes for c in ax.get_children() if isinstance(c, AxesImage)]
    values = image.get_array()
    # rows algebra, geometry, all subjects; columns level 1, level 2, all levels
    assert values.tolist() == [[75.0, 50.0, pytest.approx(66.67, abs=0.01)], [0.0, None, 0.0], [37.5, 50.0, 40.0]]


def test_cli_html_writes_the_page_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in small_run()))
    (run / "manifest.json").write_text(json.dumps({"run_id": "run", "model": "a-model-from-the-manifest"}))
    assert report_main([str(run), "--html"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json", REPORT_HTML, "trajectories.jsonl"]
    assert "a-model-from-the-manifest" in (run / REPORT_HTML).read_text()
    assert str(run / REPORT_HTML) in capsys.readouterr().out
    assert report_main([str(run), "--no-html", "--no-plots"]) == 0
    assert report_main([str(run), "--html", "--no-html"]) == 2


# --------------------------------------------------------------------------------------- a real run

CONFTEST = """
import json, pathlib
from tir_harness.engines.scripted import ScriptedEngine

def pytest_tir_make_engine(config, model):
    script = json.loads((pathlib.Path(__file__).parent / "script.json").read_text())
    return ScriptedEngine.by_question(script)
"""

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id", subject="subject", level="level")
def test_problem(problem, solve):
    assert solve(problem).answer == problem.answer
"""

PROBLEMS = [
    {"id": "right", "question": "RIGHT: what is $6 \\times 7$?", "answer": "42", "subject": "algebra", "level": 1},
    {"id": "wrong", "question": "WRONG: what is 1+1?", "answer": "2", "subject": "algebra", "level": 2},
    {"id": "code", "question": "CODE: what is $2^{10}$?", "answer": "1024", "subject": "number_theory", "level": 1},
    {"id": "raise", "question": "RAISE: what is 5?", "answer": "5", "subject": "number_theory", "level": 3},
    {"id": "hostile", "question": "HOSTILE " + HOSTILE, "answer": "2", "subject": "prealgebra", "level": 1},
    {"id": "lost", "question": "LOST: what is 3+3?", "answer": "6", "subject": "prealgebra", "level": 2},
    {"id": "gained", "question": "GAINED: what is 4+4?", "answer": "8", "subject": "prealgebra", "level": 2},
]
CODE_TURN = "Let me compute it.\n```python\nfor i in range(1):\n    print(2**10)  # the power\n```\n```output"
CURRENT = {
    "RIGHT": ["It is $6 \\cdot 7 = \\boxed{42}$."],
    "WRONG": ["It is \\boxed{3}."],
    "CODE": [CODE_TURN, "So the answer is \\boxed{1024}."],
    "RAISE": ["```python\nraise ValueError('nope')\n```\n```output", "Anyway \\boxed{5}."],
    "HOSTILE": ["<b>bold</b> " + HOSTILE + " $\\href{javascript:alert(4)}{x}$ so \\boxed{2}"],
    "LOST": ["It is \\boxed{7}."],
    "GAINED": ["It is \\boxed{8}."],
}
BASELINE = {**CURRENT, "LOST": ["It is \\boxed{6}."], "GAINED": ["It is \\boxed{9}."]}
WRONG_NOW = {"wrong", "lost"}


def run_plugin(project: Path, script: dict[str, list[str]], name: str, *extra: str) -> Path:
    (project / "script.json").write_text(json.dumps(script))
    args = ["-p", "no:cacheprovider", "-q", f"--store-dir={project / ('store-' + name)}"]
    args += [f"--report-dir={project / name}", "--model=scripted", "--prompt-format=plain", *extra]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=project, capture_output=True, text=True, timeout=300
    )
    page = project / name / REPORT_HTML
    assert page.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return page


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of a scripted run compared with a baseline run, both through the plugin."""
    project = tmp_path_factory.mktemp("project")
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "test_bench.py").write_text(textwrap.dedent(BENCH))
    (project / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    (project / "pytest.ini").write_text("[pytest]\n")
    run_plugin(project, BASELINE, "baseline")
    return run_plugin(project, CURRENT, "current", f"--baseline={project / 'baseline'}")


class Browser:
    """One headless Chromium page with every console message, page error, dialog and request recorded."""

    def __init__(self, playwright: Any) -> None:
        self.browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip

    def open(self, path: Path) -> Any:
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        page.problems = []  # type: ignore[attr-defined]
        page.requests = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type in ("error", "warning") and page.problems.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("request", lambda r: page.requests.append(r.url))
        # Anything but the file itself and data: URLs would be the network: refused, and counted above.
        page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
        page.goto(path.as_uri())
        page.wait_for_function("document.documentElement.dataset.ready === '1'", timeout=15_000)
        return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set TIR_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = Browser(playwright)
        yield launched
        launched.browser.close()


def no_network(page: Any, path: Path) -> None:
    assert [u for u in page.requests if u != path.as_uri() and not u.startswith("data:")] == []
    assert page.problems == []


def test_the_page_shows_every_problem_flips_first(real_run: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.open(real_run)
    rows = page.locator("#rows tbody tr")
    expect(rows).to_have_count(len(PROBLEMS))
    # With a baseline, the flipped problems come first: newly wrong, then newly right.
    assert rows.nth(0).locator("td").first.inner_text().endswith("/lost")
    assert rows.nth(1).locator("td").first.inner_text().endswith("/gained")
    assert "gate" in page.locator("#gate h2").inner_text()
    assert page.locator("#heatmap td.heat").count() > 0
    no_network(page, real_run)


def test_filters_and_search_narrow_the_rows(real_run: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.open(real_run)
    rows = page.locator("#rows tbody tr")
    page.select_option("#f-correct", "0")
    expect(rows).to_have_count(len(WRONG_NOW))
    assert {rows.nth(i).locator("td").first.inner_text().rsplit("/", 1)[1] for i in range(2)} == WRONG_NOW
    page.select_option("#f-correct", "")
    page.select_option("#f-status", "error")
    expect(rows).to_have_count(1)
    assert rows.first.locator("td").first.inner_text().endswith("/raise")
    page.select_option("#f-status", "")
    page.select_option("#f-subject", "prealgebra")
    expect(rows).to_have_count(3)
    page.select_option("#f-subject", "")
    page.fill("#search", "2^{10}")  # in the question text only
    expect(rows).to_have_count(1)
    page.fill("#search", "")
    page.select_option("#f-flip", "lost")
    expect(rows).to_have_count(1)
    no_network(page, real_run)


def test_a_click_opens_the_conversation(real_run: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.open(real_run)
    page.fill("#search", "CODE:")
    page.locator("#rows tbody tr").first.click()
    panel = page.locator("#trajectory")
    expect(panel).to_be_visible()
    expect(panel.locator(".msg.turn")).to_have_count(2)
    assert panel.locator(".msg.question .katex").count() == 1  # $2^{10}$ typeset
    assert panel.locator(".code .tok-kw").first.inner_text() in ("for", "in")
    observation = panel.locator(".msg.observation")
    assert observation.locator(".status.ok").count() == 1 and "1024" in observation.inner_text()
    assert "correct" in panel.locator(".msg.result").inner_text()
    no_network(page, real_run)


def test_a_flip_opens_both_trajectories_side_by_side(real_run: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.open(real_run)
    page.select_option("#f-flip", "gained")
    page.locator("#rows tbody tr").first.click()
    sides = page.locator("#trajectory .sides.two .side")
    expect(sides).to_have_count(2)
    assert sides.nth(0).inner_text().startswith("baseline") and "\\boxed{9}" not in sides.nth(0).inner_text()
    assert "wrong" in sides.nth(0).locator(".msg.result").inner_text()
    assert "correct" in sides.nth(1).locator(".msg.result").inner_text()
    no_network(page, real_run)


def test_hostile_output_is_shown_as_text(real_run: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.open(real_run)
    page.fill("#search", "HOSTILE")
    page.locator("#rows tbody tr").first.click()
    panel = page.locator("#trajectory")
    expect(panel).to_be_visible()
    assert "</script><script>alert(1)</script>" in panel.locator(".msg.question").inner_text()
    turn = panel.locator(".msg.turn")
    assert "<b>bold</b>" in turn.inner_text() and turn.locator("b, img, script").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0  # KaTeX's \href stays off (trust: false)
    no_network(page, real_run)  # no dialog either: no alert ran


def test_terminal_escapes_and_bidi_overrides_are_shown_inert(tmp_path: Path, browser: Browser) -> None:
    # "\u202e24" would show as 42: a wrong prediction reading as the gold answer.
    acting = "\x1b[31mRED\x1b[0m \u202e24 \u2066x\x07"
    records = small_run()
    records[0] = {**records[0], "prediction": acting, "question": "Q " + acting, "model": "m" + acting}
    records[0]["turns"][0]["text"] = "turn " + acting
    write_summary(tmp_path, records, plots=False)
    page = browser.open(tmp_path / REPORT_HTML)
    page.locator("#rows tbody tr").first.click()
    shown = page.evaluate("document.title + document.body.innerText")
    assert not any(c in shown for c in "\x1b\x07\u202e\u2066")
    assert "\\u202e24" in page.locator("#rows tbody tr").first.inner_text()
    assert "turn \\x1b[31mRED" in page.locator("#trajectory .msg.turn").inner_text()
    no_network(page, tmp_path / REPORT_HTML)
    assert records[0]["turns"][0]["text"] == "turn " + acting  # the records keep their text


def test_paging_keeps_large_runs_to_one_page_of_rows(tmp_path: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    records = [record(f"math/test/algebra/{i}", i % 3 == 0, level=1 + i % 5) for i in range(250)]
    write_summary(tmp_path, records, plots=False)
    page = browser.open(tmp_path / REPORT_HTML)
    rows = page.locator("#rows tbody tr")
    expect(rows).to_have_count(100)
    page.click("#next")
    page.click("#next")
    expect(rows).to_have_count(50)
    assert rows.first.locator("td").first.inner_text() == "math/test/algebra/200"
    page.select_option("#f-level", "5")
    expect(rows).to_have_count(50)
    assert page.locator("#count").inner_text() == "50 of 250 trajectories"
    no_network(page, tmp_path / REPORT_HTML)


def test_a_column_added_to_the_fields_shows_in_the_page_and_in_the_validation(
    tmp_path: Path, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a report column is one `Field` in records/fields.py: the page's table and filter, the schema and
    load_records follow from it, with nothing else changed."""
    import jsonschema
    from playwright.sync_api import expect

    from tir_harness.records import fields
    from tir_harness.records.load import ReportError, load_records

    judge = fields.Field(
        "judge_score", {"type": ["number", "null"], "minimum": 0}, "A judge model's score of the solution.",
        optional=True, load=fields.CHECKED,
        column=fields.Column("judge", "6%", cell="number", filter="any judge score", option="score {}"),
    )  # fmt: skip
    monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, judge))
    records = [dict(r, judge_score=i % 3 * 0.25) for i, r in enumerate(small_run())]
    write_summary(tmp_path, records, plots=False)

    page = browser.open(tmp_path / REPORT_HTML)
    headings = page.locator("#rows thead th").all_inner_texts()
    assert "judge" in headings
    column = headings.index("judge")
    cells = page.evaluate(
        "c => Array.from(document.querySelectorAll('#rows tbody tr'), r => [r.cells[0].textContent, "
        "r.cells[c].textContent])",
        column,
    )
    assert dict(cells) == {r["problem_id"]: f"{r['judge_score']:g}" for r in records}
    page.select_option("#f-judge_score", "0.5")
    expect(page.locator("#rows tbody tr")).to_have_count(sum(r["judge_score"] == 0.5 for r in records))
    no_network(page, tmp_path / REPORT_HTML)

    validator = jsonschema.Draft202012Validator(fields.json_schema())
    assert validator.is_valid(records[0]) and validator.is_valid({**records[0], "judge_score": None})
    assert [list(e.path) for e in validator.iter_errors({**records[0], "judge_score": "high"})] == [["judge_score"]]
    file = tmp_path / "trajectories.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in [records[0], {**records[1], "judge_score": -1}]))
    with pytest.raises(ReportError, match=r"trajectories\.jsonl:2: judge_score must be a number >= 0 or null, got -1"):
        load_records(file)
