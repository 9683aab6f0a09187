"""report.html: one self-contained page per run, with the overview and every trajectory.

The page opens from a CI artifact or an e-mail attachment: no server, no network.  Everything it uses is
inlined: our stylesheet and script (assets/report.css, assets/report.js), KaTeX for the mathematics
(assets/katex, MIT, its fonts as data: URLs) and the data.  A Content-Security-Policy that allows no source
but inline code and data: fonts makes "no network" a property of the page rather than a promise of the code.

Who renders what:
- The overview (accuracy, heatmap, tool use, endings, cost, comparison, settings) is rendered here, in
  Python, from the summary dict and the comparison dict that summary.json holds: one source for every number,
  written by `formats` like the terminal and summary.md.
- The problem table and the trajectories are rendered in the browser from a JSON block, so that 5,000 x 8
  trajectories cost one parse and not 40,000 rows of DOM.  The table's columns are the record's
  (`records.fields`: heading, width, how a cell is shown, filter, search) and two of the page's own
  (the question, the flip); the JSON block carries them and the script renders what it is given.

Model output is hostile (it may hold `</script>`, HTML, LaTeX macros, lone surrogates): here every text goes
through `html.escape`, the JSON is ASCII with `<`, `>` and `&` escaped so it cannot end its script element,
and the browser side only ever sets `textContent` (KaTeX runs with `trust: false`, so no `\\href`, no HTML).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tir_harness.analysis.formats import interval, p_value, percent
from tir_harness.records import fields
from tir_harness.records.fields import Column
from tir_harness.util.files import write_atomic
from tir_harness.util.text import displayable

REPORT_HTML = "report.html"
ASSETS = Path(__file__).with_name("assets")
KATEX_VERSION = "0.19.1"

# Nothing but the page's own inline code and styles, and data: fonts and images, may load.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "font-src data:; img-src data:; base-uri 'none'; form-action 'none'"
)

# Samples of matplotlib's viridis (perceptually uniform, readable in grey and by colour-blind readers) at
# 0, 0.25, 0.5, 0.75, 1: the heatmap's colour for an accuracy, the same scale as accuracy.png.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))

Record = dict[str, Any]


# ------------------------------------------------------------------------------------------------ assets


@cache
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _inline_script(code: str, name: str) -> str:
    # An inline script ends at the first "</script" whatever its context; "<!--" changes how it is parsed.
    if re.search(r"</script|<!--", code, re.IGNORECASE):
        raise ValueError(f"{name} cannot be inlined: it contains </script or <!--")
    return f"<script>{code}</script>"


@cache
def _katex_css() -> str:
    """KaTeX's stylesheet with each font as a woff2 data: URL (every browser that runs the page reads woff2)."""
    css = _asset("katex/katex.min.css")

    def inline(match: re.Match[str]) -> str:
        font = (ASSETS / "katex" / "fonts" / f"{match.group(1)}.woff2").read_bytes()
        return f'url(data:font/woff2;base64,{base64.b64encode(font).decode("ascii")}) format("woff2")'

    css = re.sub(
        r'url\(fonts/([\w-]+)\.woff2\) format\("woff2"\),url\(fonts/[\w-]+\.woff\) format\("woff"\),'
        r'url\(fonts/[\w-]+\.ttf\) format\("truetype"\)',
        inline,
        css,
    )
    if "url(fonts/" in css:
        raise ValueError("katex.min.css refers to a font this module does not inline")
    return css


def embed_json(data: Any) -> str:
    """`data` as JSON that is safe inside `<script type="application/json">`.

    ASCII only (so U+2028/2029 and lone surrogates become escapes), and `<`, `>`, `&` escaped: no text can
    close the element or open a comment.  Those three characters only occur inside JSON strings, where the
    escapes mean the same characters to `JSON.parse`.
    """
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -------------------------------------------------------------------------------------------- the data


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value, default=str)


def _int(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 3) if math.isfinite(number) else None


def _natural(text: str) -> tuple[Any, ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))


def _latest(records: Iterable[Record]) -> dict[tuple[str, int], Record]:
    """One record per (problem_id, sample), the last one, like the summary (a rerun appends after the first)."""
    by_key: dict[tuple[str, int], Record] = {}
    for record in records:
        by_key[(str(record.get("problem_id")), _int(record.get("sample")) or 0)] = record
    return by_key


def _turns(record: Record) -> list[list[Any]]:
    """Per turn [text, observation, exec status, finish reason, completion tokens].

    `code` is left out: it is the turn's ```python blocks, which the text holds and the page highlights.
    """
    turns = record.get("turns")
    if not isinstance(turns, list):
        return []
    return [
        [
            _text(t.get("text")) or "",
            _text(t.get("observation")),
            _text(t.get("exec_status")),
            _text(t.get("finish_reason")),
            _int(t.get("completion_tokens")),
        ]
        for t in turns
        if isinstance(t, dict)
    ]


def _detail(record: Record) -> dict[str, Any]:
    return {
        "t": _turns(record),
        "r": _text(record.get("grade_reason")),
        "e": _text(record.get("error")),
        "s": _number(record.get("seconds")),
        "pt": _int(record.get("prompt_tokens")),
        "ct": _int(record.get("completion_tokens")),
        "rp": _text(record.get("reference_prediction")),
        "rc": None if record.get("reference_correct") is None else 1 if record.get("reference_correct") else 0,
    }


def _verdict(value: Any) -> int | None:
    return None if value is None else 1 if value else 0


def _figure(value: Any) -> int | float | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else number


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


# A cell's value as the page's data holds it, by how the cell is shown (`fields.CELLS`): plain JSON only.
_CELL_VALUE: dict[str, Callable[[Any], Any]] = {
    "text": _text, "answer": _text, "number": _figure, "verdict": _verdict, "list": _strings, "flip": _text,
}  # fmt: skip

# Two columns of the page's own, after the record's: the question (an index into the page's list of questions,
# so that the samples of a problem share one copy; searched, shown in the trajectory view) and, against a
# baseline, whether the pair flipped ("lost", "gained" or null).
_QUESTION = Column(None)
_FLIP = Column("flip", "8%", cell="flip", filter="flipped or not", show="some")


def _spec(column: Column) -> dict[str, Any]:
    """What the page's script needs to know of a column."""
    return {
        "heading": column.heading, "width": column.width, "cell": column.cell, "filter": column.filter,
        "option": column.option, "search": column.search, "show": column.show,
    }  # fmt: skip


def page_data(
    records: Iterable[Record], comparison: Mapping[str, Any] | None = None, baseline: Iterable[Record] | None = None
) -> dict[str, Any]:
    """The JSON the page's script reads: the columns (the record's, from `fields.page_columns()`, then the
    question and the flip), one row and one detail per (problem, sample), questions once each.

    With a comparison, the flipped pairs carry their baseline trajectory (and only those: the page opens
    them side by side; the rest of the baseline is summary.json's business).
    """
    columns = fields.page_columns()
    cells = [(value, _CELL_VALUE[column.cell]) for _, column, value in columns]
    latest = _latest(records)
    flips: dict[tuple[str, int], str] = {}
    if comparison:
        for kind, name in (("lost", "lost_ids"), ("gained", "gained_ids")):
            for pair in comparison.get(name) or []:
                flips[(str(pair["problem_id"]), int(pair["sample"]))] = kind
    base = _latest(baseline) if baseline is not None and flips else {}
    questions: dict[str, int] = {}
    rows: list[list[Any]] = []
    details: list[dict[str, Any]] = []
    baseline_details: dict[str, Any] = {}
    for key in sorted(latest, key=lambda k: (_natural(k[0]), k[1])):
        record = latest[key]
        question = _text(record.get("question")) or ""
        row = [shown(value(record)) for value, shown in cells]
        row += [questions.setdefault(question, len(questions)), flips.get(key)]
        rows.append(row)
        details.append(_detail(record))
        if key in flips and key in base:
            old = base[key]
            baseline_details[str(len(rows) - 1)] = {
                **_detail(old),
                "p": _text(old.get("prediction")),
                "c": 1 if old.get("correct") else 0,
                "run": _text(old.get("run_id")),
            }
    specs = [_spec(column) for _, column, _ in columns] + [_spec(_QUESTION), _spec(_FLIP)]
    return {
        "columns": [name for name, _, _ in columns] + ["question", "flip"],
        "specs": specs,
        "rows": rows,
        "details": details,
        "questions": list(questions),
        "baseline": baseline_details,
    }


# ------------------------------------------------------------------------------------------ the overview


def _e(value: Any) -> str:
    return html.escape(displayable(str(value)), quote=True)


def _shown(value: Any) -> Any:
    """The page's data with every string made displayable: a browser applies a bidirectional override too
    (a prediction "\u202e24" would show as 42), and the page is for reading; the records keep their text."""
    if isinstance(value, str):
        return displayable(value)
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    return value


def _colour(accuracy: float) -> tuple[str, str]:
    """Background and a readable text colour for an accuracy in [0, 1]."""
    x = min(1.0, max(0.0, accuracy)) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    f = x - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1], strict=True)]
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", "#000" if accuracy >= 0.55 else "#fff"


def _group_title(name: str, group: Mapping[str, Any]) -> str:
    return (
        f"{name}: {percent(group['accuracy'])}, 95% CI {interval(group['ci'])}; {group['n']} problems, "
        f"{group['correct']}/{group['records']} trajectories correct"
    )


def _cell(name: str, group: Mapping[str, Any] | None) -> str:
    if not group or not group.get("n"):
        return '<td class="empty"></td>'
    background, colour = _colour(group["accuracy"])
    return (
        f'<td class="heat" style="background:{background};color:{colour}" title="{_e(_group_title(name, group))}">'
        f"{_e(percent(group['accuracy']))}<small>n={_e(group['n'])}</small></td>"
    )


def _accuracy_table(title: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    if not groups:
        return ""
    rows = "".join(
        f"<tr><th>{_e(name)}</th><td>{_e(g['n'])}</td><td>{_e(percent(g['accuracy']))}</td>"
        f"<td>{_e(interval(g['ci']))}</td><td>{_e(g['correct'])}/{_e(g['records'])}</td></tr>"
        for name, g in groups.items()
    )
    return (
        f'<table class="numbers"><caption>{_e(title)}</caption><thead><tr><th></th><th>problems</th>'
        f"<th>accuracy</th><th>95% CI</th><th>correct trajectories</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def heatmap(summary: Mapping[str, Any]) -> str:
    """Subject x level, colour = accuracy, count and interval on hover; an "all" row and column."""
    acc = summary["accuracy"]
    cells: Mapping[str, Mapping[str, Any]] = acc.get("by_subject_level") or {}
    levels = sorted({lv for row in cells.values() for lv in row} | set(acc.get("by_level") or {}), key=_natural)
    if not cells or not levels:
        return ""
    head = "".join(f"<th>level {_e(lv)}</th>" for lv in levels) + "<th>all levels</th>"
    body = ""
    for subject, row in cells.items():
        body += f"<tr><th>{_e(subject)}</th>"
        body += "".join(_cell(f"{subject}, level {lv}", row.get(lv)) for lv in levels)
        body += _cell(f"{subject}, all levels", (acc.get("by_subject") or {}).get(subject)) + "</tr>"
    body += '<tr class="all"><th>all subjects</th>'
    body += "".join(_cell(f"all subjects, level {lv}", acc["by_level"].get(lv)) for lv in levels)
    body += _cell("all problems", acc["overall"]) + "</tr>"
    return (
        '<table class="heatmap" id="heatmap"><caption>Accuracy by subject and level (hover a cell for its 95% '
        f"Wilson interval and counts)</caption><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _bars(title: str, counts: Mapping[str, int], total: int, note: Mapping[str, str] | None = None) -> str:
    if not counts:
        return ""
    rows = ""
    for name, count in counts.items():
        width = 100 * count / total if total else 0
        extra = f" <small>{_e(note[name])}</small>" if note and name in note else ""
        rows += (
            f'<tr><th>{_e(name)}</th><td class="count">{_e(count)}</td>'
            f'<td class="bar"><span style="width:{width:.1f}%"></span>{_e(f"{width:.1f}%")}{extra}</td></tr>'
        )
    return f'<table class="bars"><caption>{_e(title)}</caption><tbody>{rows}</tbody></table>'


def _distribution_rows(name: str, d: Mapping[str, Any], unit: str = "") -> str:
    def f(x: Any) -> str:
        return f"{x:,.1f}{unit}" if isinstance(x, float) and not float(x).is_integer() else f"{x:,.0f}{unit}"

    return (
        f"<tr><th>{_e(name)}</th><td>{_e(f(d.get('mean', 0)))}</td><td>{_e(f(d.get('median', 0)))}</td>"
        f"<td>{_e(f(d.get('max', 0)))}</td><td>{_e(f(d.get('total', 0)))}</td></tr>"
    )


def _reference(summary: Mapping[str, Any]) -> str:
    """The reference implementation's grader beside ours (summaries of runs that recorded its verdict)."""
    ref = summary.get("reference_grader")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("overall"), Mapping):
        return ""
    overall = ref["overall"]
    detail = (
        f"95% CI {interval(overall['ci'])}; graders disagree on {ref.get('disagree', 0)} problems "
        f"({ref.get('only_harness', 0)} samples only ours accepts, {ref.get('only_reference', 0)} only the "
        "reference's); pass/fail uses ours"
    )
    return (
        f'<div class="metric"><span>reference grader</span><b id="reference-accuracy">'
        f"{_e(percent(overall['accuracy']))}</b><small>{_e(detail)}</small></div>"
    )


def _headline(summary: Mapping[str, Any]) -> str:
    overall = summary["accuracy"]["overall"]
    records, problems = summary["records"], summary["problems"]
    samples = summary.get("samples", {})
    per = f", {samples.get('max')} samples each" if samples.get("max", 1) > 1 else ""
    tools = summary.get("tool_calls", {})
    return (
        '<div class="metrics">'
        f'<div class="metric main"><span>accuracy</span><b id="headline-accuracy">{_e(percent(overall["accuracy"]))}'
        f"</b><small>95% CI {_e(interval(overall['ci']))}</small></div>"
        f"{_reference(summary)}"
        f'<div class="metric"><span>problems</span><b>{_e(problems)}</b><small>{_e(records)} trajectories'
        f"{_e(per)}</small></div>"
        f'<div class="metric"><span>correct trajectories</span><b>{_e(overall["correct"])}</b></div>'
        f'<div class="metric"><span>used the tool</span><b>{_e(tools.get("used", 0))}</b>'
        f"<small>mean {_e(format(tools.get('mean', 0), '.2f'))} calls</small></div>"
        f'<div class="metric"><span>no answer</span><b>{_e(summary.get("counts", {}).get("no_answer", 0))}</b></div>'
        "</div>"
    )


def _sampling(summary: Mapping[str, Any]) -> str:
    pass_k, maj_k = summary.get("pass_at_k") or {}, summary.get("maj_at_k") or {}
    if not pass_k:
        return ""
    rows = "".join(
        f"<tr><th>k = {_e(k)}</th><td>{_e(percent(pass_k[k]['value']))}</td>"
        f"<td>{_e(percent(maj_k[k]['value'])) if k in maj_k else ''}</td><td>{_e(pass_k[k]['n'])}</td></tr>"
        for k in pass_k
    )
    avg = summary.get("avg_at_k")
    caption = "Several samples"
    if avg:
        caption += f": avg@{avg['k']} {percent(avg['value'])} {interval(avg['ci'])}"
    return (
        f'<table class="numbers"><caption>{_e(caption)}</caption><thead><tr><th></th><th>pass@k</th>'
        f"<th>maj@k</th><th>problems</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _tool_use(summary: Mapping[str, Any]) -> str:
    histogram = (summary.get("tool_calls") or {}).get("histogram") or {}
    counts = {f"{c} calls": h["records"] for c, h in histogram.items()}
    notes = {
        f"{c} calls": f"{percent(h['correct'] / h['records'])} correct" for c, h in histogram.items() if h["records"]
    }
    records = summary["records"]
    statuses = summary.get("exec_status") or {}
    return (
        _bars("Tool calls per trajectory", counts, records, notes)
        + _bars("How trajectories ended", summary.get("end_reasons") or {}, records)
        + _bars("Executor status per tool call", statuses, sum(statuses.values()))
    )


def _cost(summary: Mapping[str, Any]) -> str:
    cost = summary.get("cost") or {}
    rows = _distribution_rows("turns", summary.get("turns") or {})
    rows += _distribution_rows("tool calls", summary.get("tool_calls") or {})
    rows += _distribution_rows("prompt tokens", cost.get("prompt_tokens") or {})
    rows += _distribution_rows("completion tokens", cost.get("completion_tokens") or {})
    if cost.get("thinking_tokens"):  # a reasoning model's: of the completion tokens, thinking and answer
        rows += _distribution_rows("thinking tokens", cost["thinking_tokens"])
        rows += _distribution_rows("answer tokens", cost.get("answer_tokens") or {})
    rows += _distribution_rows("seconds", cost.get("seconds") or {}, " s")
    cached = (summary.get("counts") or {}).get("cached", 0)
    note = f"<p class='note'>{_e(cached)} trajectories came from the result store.</p>" if cached else ""
    return (
        '<table class="numbers"><caption>Cost per trajectory</caption><thead><tr><th></th><th>mean</th>'
        f"<th>median</th><th>max</th><th>total</th></tr></thead><tbody>{rows}</tbody></table>{note}"
    )


def _gate_banner(comparison: Mapping[str, Any], gate: tuple[bool, str] | None, enforced: bool) -> str:
    c = comparison
    move = (
        f"{percent(c['baseline_accuracy'])} → {percent(c['current_accuracy'])} on {c['n']} matched pairs, "
        f"difference {100 * c['difference']:+.1f} points [{100 * c['difference_ci'][0]:+.1f}, "
        f"{100 * c['difference_ci'][1]:+.1f}], {c['gained']} newly right / {c['lost']} newly wrong, "
        f"McNemar p = {p_value(c['p_value'])}"
    )
    if gate is None:
        verdict, css = "compared", "neutral"
        reason = move
    else:
        verdict = ("gate passed" if gate[0] else "gate FAILED") + ("" if enforced else " (not enforced: no --gate)")
        css = "pass" if gate[0] else "fail"
        reason = gate[1]
    warnings = "".join(f"<li>{_e(w)}</li>" for w in c.get("warnings") or [])
    unmatched = ""
    if c.get("only_current") or c.get("only_baseline"):
        unmatched = (
            f"<p>Unmatched, excluded: {len(c.get('only_current') or [])} only in this run, "
            f"{len(c.get('only_baseline') or [])} only in the baseline.</p>"
        )
    return (
        f'<section class="gate {css}" id="gate"><h2>{_e(verdict)}</h2><p>{_e(reason)}</p>'
        f"<p>Baseline {_e(c['baseline_label'])}: {_e(move)}.</p>{unmatched}"
        f"{'<ul class=warnings>' + warnings + '</ul>' if warnings else ''}"
        '<p><a href="#problems" data-flip="flipped">Show the flipped problems</a></p></section>'
    )


def _settings(manifest: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> str:
    data: Mapping[str, Any] = manifest if manifest else summary.get("run") or {}
    rows = ""
    for name, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True, default=str)
        rows += f"<tr><th>{_e(name)}</th><td><pre>{_e(shown)}</pre></td></tr>"
    source = "manifest.json" if manifest else "the records (no manifest.json)"
    return (
        f'<details id="settings"><summary>Settings of the run, from {_e(source)}</summary>'
        f'<table class="settings"><tbody>{rows}</tbody></table></details>'
    )


def _title(summary: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> str:
    run = summary.get("run") or {}
    run_id = (manifest or {}).get("run_id") or ", ".join(str(r) for r in run.get("run_ids") or []) or "run"
    models = ", ".join(str(m) for m in run.get("models") or []) or str((manifest or {}).get("model") or "")
    return f"{run_id}" + (f" · {models}" if models and models not in str(run_id) else "")


# -------------------------------------------------------------------------------------------------- page


def render_html(
    summary: Mapping[str, Any],
    records: Iterable[Record],
    *,
    manifest: Mapping[str, Any] | None = None,
    baseline: Iterable[Record] | None = None,
    gate: tuple[bool, str] | None = None,
    gate_enforced: bool = False,
) -> str:
    """The whole page as a string.

    `summary` is what `summarize` returned (with "comparison" when there is a baseline); `gate` is the
    verdict (passed, reason), `gate_enforced` whether it decided the exit status (--gate).
    """
    comparison = summary.get("comparison")
    data = _shown(page_data(records, comparison, baseline))
    title = _title(summary, manifest)
    acc = summary["accuracy"]
    by_dataset = _accuracy_table("Accuracy by dataset", acc.get("by_dataset") or {})
    # With a heatmap, subjects and levels are its margins; without one (no levels), tables.
    flat = not acc.get("by_subject_level")
    by_subject = _accuracy_table("Accuracy by subject", acc.get("by_subject") or {}) if flat else ""
    by_level = _accuracy_table("Accuracy by level", acc.get("by_level") or {}) if flat else ""
    gate_html = _gate_banner(comparison, gate, gate_enforced) if comparison else ""
    searched = ", ".join(str(c.heading) for _, c, _ in fields.page_columns() if c.search)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tir-harness; KaTeX {KATEX_VERSION} (MIT)">
<title>{_e(title)} · tir-harness report</title>
<style>{_katex_css()}</style>
<style>{_asset("report.css")}</style>
</head>
<body>
<header><h1>{_e(title)}</h1><nav><a href="#overview">Overview</a> <a href="#problems">Problems</a></nav></header>
<main>
{gate_html}
<section id="overview"><h2>Overview</h2>
{_headline(summary)}
<div class="grid">{heatmap(summary)}{by_dataset}{by_subject}{by_level}{_sampling(summary)}</div>
<div class="grid">{_tool_use(summary)}</div>
<div class="grid">{_cost(summary)}</div>
{_settings(manifest, summary)}
</section>
<section id="problems"><h2>Problems</h2>
<form id="filters" autocomplete="off" onsubmit="return false">
<input type="search" id="search" placeholder="search the question, {_e(searched)}" aria-label="search">
<span id="count" role="status"></span>
</form>
<table id="rows"><thead><tr></tr></thead><tbody></tbody></table>
<div id="pager"><button type="button" id="prev">previous</button> <span id="page"></span>
<button type="button" id="next">next</button></div>
</section>
<section id="trajectory" hidden></section>
</main>
<footer>tir-harness report · mathematics by KaTeX {KATEX_VERSION} (MIT licence)</footer>
<script type="application/json" id="tir-data">{embed_json(data)}</script>
{_inline_script(_asset("katex/katex.min.js"), "katex.min.js")}
{_inline_script(_asset("katex/auto-render.min.js"), "auto-render.min.js")}
{_inline_script(_asset("report.js"), "report.js")}
</body>
</html>
"""


def write_html(run_dir: str | Path, summary: Mapping[str, Any], records: Sequence[Record], **options: Any) -> Path:
    """Write report.html into `run_dir` (atomically: a reader never opens half a page); return its path."""
    path = Path(run_dir) / REPORT_HTML
    write_atomic(path, render_html(summary, records, **options))
    return path
