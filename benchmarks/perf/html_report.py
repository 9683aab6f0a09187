"""report.html at scale: the page of a scripted 5,000-problem MATH run, its size and its time to interactive.

    python benchmarks/perf/html_report.py [--problems 5000] [--samples-page 8] [--repeat 5] [--keep]

1. Runs the shipped MATH test set (the first --problems) through the real plugin with a scripted engine that
   answers at once: a turn of reasoning with LaTeX and a ```python block (run in the real sandbox), then a
   boxed answer (every third one wrong).  The plugin writes report.html as in any run.
2. Builds a second page from the same records copied into --samples-page samples per problem (5,000 x 8),
   with `tir-harness report --html`, to see what many samples cost.
3. Loads each page in headless Chromium --repeat times and reports the median time to interactive: from
   navigation start until the page's script has filled the table and answers clicks (`window.tirReadyMs`).
   The same is measured for an empty page in the same browser: the ratio is the page's own cost.  Also timed:
   narrowing the table with a filter, and opening a trajectory (both synchronous in the page).

Targets (issue 15): a 5,000-problem page <= 15 MB and interactive in <= 2 s on this machine (2 cores).
Needs Debian's chromium and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("TIR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SIZE_TARGET_MB = 15.0
READY_TARGET_MS = 2000.0

CONFTEST = '''
import os
from concurrent.futures import Future

from tir_harness.engines.base import Completion

ANSWERS = {}
REASONING = (
    "We need to find the value requested. Let $x$ denote the unknown; from the statement, "
    "$x^2 - 5x + 6 = 0$, so $(x-2)(x-3) = 0$ and $x \\\\in \\\\{2, 3\\\\}$. Checking both against the condition "
    "$\\\\frac{x+1}{x-1} > 1$ leaves the candidates to verify numerically, which the code below does. "
)
CODE = (
    "```python\\nfrom fractions import Fraction\\n\\n# the roots of x^2 - 5x + 6, then the condition\\n"
    "roots = [x for x in range(-10, 11) if x**2 - 5*x + 6 == 0]\\n"
    "valid = [r for r in roots if Fraction(r + 1, r - 1) > 1]\\nprint(sorted(valid))\\n```\\n"
)


class Scripted:
    """Answers in the caller's thread: one turn with code, then the boxed answer (every third one wrong)."""

    def submit(self, request):
        problem_id, _, turn = request.request_id.rpartition("#t")
        problem_id = problem_id.rsplit("#s", 1)[0]
        if int(turn) == 0:
            text, stop = REASONING + CODE, "```output"
        else:
            gold = ANSWERS.get(problem_id, "0")
            answer = gold if hash(problem_id) % 3 else gold + "1"
            text, stop = "The code confirms it, so the answer is $\\\\boxed{" + answer + "}$.", None
        future = Future()
        future.set_result(Completion(text=text, finish_reason="stop", stop_reason=stop, prompt_tokens=900,
                                     completion_tokens=120))
        return future

    def info(self):
        return {"kind": "scripted", "model": "scripted"}

    def close(self):
        pass


def pytest_tir_make_engine(config, model):
    return Scripted()


def pytest_collection_modifyitems(items):
    del items[int(os.environ["TIR_BENCH_N"]):]
    for item in items:
        problem = getattr(item, "callspec", None) and item.callspec.params.get("problem")
        if problem is not None and hasattr(problem, "answer"):
            ANSWERS[problem.id] = problem.answer
'''

TEST_FILE = '''
import pytest

@pytest.mark.tir_dataset("math", split="test")
def test_math(problem, solve):
    assert solve(problem).answer == problem.answer
'''

EMPTY_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>empty</title></head><body>"
    "<script>window.tirReadyMs = performance.now(); document.documentElement.dataset.ready = '1';</script>"
    "</body></html>"
)


def scripted_run(work: Path, problems: int) -> Path:
    """The plugin's run folder of a scripted MATH run (the plugin writes report.html itself)."""
    (work / "conftest.py").write_text(CONFTEST)
    (work / "test_math.py").write_text(TEST_FILE)
    env = {**os.environ, "TIR_BENCH_N": str(problems), "PYTHONHASHSEED": "0"}
    for name in ("TIR_STORE_DIR", "TIR_DATA_DIR", "TIR_MODEL"):  # the shipped MATH test set, nothing else
        env.pop(name, None)
    run_dir = work / "run"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts=",
               f"--store-dir={work / 'store'}", f"--report-dir={run_dir}", "--prompt-format=plain",
               "test_math.py"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if not (run_dir / "report.html").is_file():
        sys.exit(f"the run wrote no report.html (exit {done.returncode})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"scripted run of {problems} problems through the plugin: {time.perf_counter() - start:.1f} s", flush=True)
    return run_dir


def many_samples(run_dir: Path, work: Path, samples: int) -> Path:
    """The same records as `samples` samples per problem, and their page written by `tir-harness report --html`."""
    import json

    from tir_harness.cli.report import main as report

    out = work / f"samples-{samples}"
    out.mkdir()
    with (run_dir / "trajectories.jsonl").open() as source, (out / "trajectories.jsonl").open("w") as target:
        for line in source:
            record = json.loads(line)
            for sample in range(samples):
                target.write(json.dumps({**record, "sample": sample, "correct": record["correct"] ^ (sample == 3)}))
                target.write("\n")
    shutil.copy(run_dir / "manifest.json", out / "manifest.json")
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = report([str(out), "--html"])
        finally:
            sys.stdout = stdout
    if code != 0:
        sys.exit(f"tir-harness report --html failed with {code}")
    print(f"{samples} samples per problem: report.html written in {time.perf_counter() - start:.1f} s", flush=True)
    return out / "report.html"


def measure(browser: Any, path: Path, repeat: int, interact: bool) -> dict[str, float]:
    """Median time to interactive (ms since navigation start) over `repeat` fresh pages; with `interact`,
    also the time a filter and a click take inside the page."""
    ready, filtered, opened = [], [], []
    for _ in range(repeat):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
        page.goto(path.as_uri())
        page.wait_for_function("document.documentElement.dataset.ready === '1'", timeout=60_000)
        ready.append(float(page.evaluate("window.tirReadyMs")))
        if interact:
            filtered.append(
                float(
                    page.evaluate(
                        """() => { const s = document.getElementById('f-correct'), t = performance.now();
                        s.value = '0'; s.dispatchEvent(new Event('change')); return performance.now() - t; }"""
                    )
                )
            )
            opened.append(
                float(
                    page.evaluate(
                        """() => { const row = document.querySelector('#rows tbody tr'), t = performance.now();
                        row.click(); return performance.now() - t; }"""
                    )
                )
            )
        if errors:
            sys.exit(f"{path}: errors in the page: {errors[:3]}")
        page.close()
    result = {"ready_ms": statistics.median(ready), "ready_max_ms": max(ready)}
    if interact:
        result |= {"filter_ms": statistics.median(filtered), "open_ms": statistics.median(opened)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=5000, help="at most 5000 (the MATH test set)")
    parser.add_argument("--samples-page", type=int, default=8, help="samples per problem of the second page (0: none)")
    parser.add_argument("--repeat", type=int, default=5, help="page loads per page; medians are printed")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its path is printed)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set TIR_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="tir-bench-html-"))
    try:
        run_dir = scripted_run(work, args.problems)
        pages = [(f"{args.problems} problems", run_dir / "report.html")]
        if args.samples_page > 1:
            pages.append((f"{args.problems} x {args.samples_page}", many_samples(run_dir, work, args.samples_page)))
        empty = work / "empty.html"
        empty.write_text(EMPTY_PAGE)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )  # fmt: skip
            measure(browser, empty, 1, False)  # warm the browser up once, for both
            base = measure(browser, empty, args.repeat, False)
            results = [(name, path, measure(browser, path, args.repeat, True)) for name, path in pages]
            browser.close()
        print(f"\nheadless Chromium, median of {args.repeat} loads; {os.cpu_count()} cores")
        print(f"{'page':18} {'size MB':>8} {'ready ms':>9} {'max ms':>7} {'x empty':>8} {'filter ms':>10} "
              f"{'open ms':>8}")  # fmt: skip
        print(f"{'empty page':18} {empty.stat().st_size / 1e6:8.3f} {base['ready_ms']:9.0f} "
              f"{base['ready_max_ms']:7.0f}")  # fmt: skip
        for name, path, r in results:
            print(f"{name:18} {path.stat().st_size / 1e6:8.2f} {r['ready_ms']:9.0f} {r['ready_max_ms']:7.0f} "
                  f"{r['ready_ms'] / base['ready_ms']:8.1f} {r['filter_ms']:10.1f} {r['open_ms']:8.1f}")  # fmt: skip
        name, path, first = results[0]
        size = path.stat().st_size / 1e6
        print(
            f"\ntargets for {name}: size {size:.2f} MB <= {SIZE_TARGET_MB:.0f} MB: "
            f"{'met' if size <= SIZE_TARGET_MB else 'MISSED'}; interactive {first['ready_ms']:.0f} ms <= "
            f"{READY_TARGET_MS:.0f} ms: {'met' if first['ready_ms'] <= READY_TARGET_MS else 'MISSED'}"
        )
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
