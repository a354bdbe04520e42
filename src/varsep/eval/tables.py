"""Paper-style Markdown tables from evaluation reports (metrics.json), one row per run.

The layout follows the paper's table for the kind of data set:
- content-swap data (a swap ground truth exists: Moving MNIST, Chairs) — Table 2 / Table 4:
  ``Pred. (t+h) PSNR | Pred. (t+h) SSIM`` for every horizon, then ``Swap (t+h) PSNR | SSIM``;
- data with a paper-specific MSE scale (TaxiBJ) — Table 3: ``MSE t+h`` on that scale;
- otherwise (WaveEq, WaveEq-100, SST, KTH, your own data) — Table 1: ``MSE t+h`` for every horizon, then
  ``SSIM t+h`` when frames are images. MSE is the data set's reported MSE (°C² for SST).
Every value is the mean over the horizon's predicted steps, averaged over test windows. Missing entries
(e.g. the swap of a model without S) are "—". A last row gives "repeat the last frame" for reference.
Under the table, the definition of each metric used (from metrics.json).

``varsep report RUN_DIR…`` puts several runs side by side: one table per data set, and one figure of the
per-step MSE curves per data set and horizon (``report_curves``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varsep.errors import VarsepError
from varsep.eval.scoring import headline_mse

DASH = "—"
BASELINE_LABEL = "Repeat last frame"


@dataclass(frozen=True)
class Column:
    header: str
    horizon: str
    key: str  # metric name inside a horizon's result (or its "swap" part)
    swap: bool = False


def horizons_of(reports: list[dict[str, Any]]) -> list[str]:
    return sorted({h for r in reports for h in r["horizons"]}, key=int)


def _mse_key(reports: list[dict[str, Any]]) -> str:
    keys = [headline_mse(res) for r in reports for res in r["horizons"].values()]
    for key in ("mse_paper", "mse_physical", "mse_paper_compatible"):
        if key in keys:
            return key
    return "mse"


def layout(reports: list[dict[str, Any]]) -> str:
    """"swap" (Table 2/4), "mse" (Table 3) or "prediction" (Table 1)."""
    results = [res for r in reports for res in r["horizons"].values()]
    if any((res.get("swap") or {}).get("ground_truth") for res in results):
        return "swap"
    if any("mse_paper_mean" in res for res in results):
        return "mse"
    return "prediction"


def columns(reports: list[dict[str, Any]]) -> list[Column]:
    horizons = horizons_of(reports)
    kind = layout(reports)
    results = [res for r in reports for res in r["horizons"].values()]
    has_ssim = any("ssim_mean" in res for res in results)
    if kind == "swap":
        metrics = ["psnr", "ssim"] if has_ssim else ["psnr"]
        cols = [Column(f"Pred. (t+{h}) {m.upper()}", h, m) for h in horizons for m in metrics]
        swaps = [Column(f"Swap (t+{h}) {m.upper()}", h, m, swap=True) for h in horizons for m in metrics]
        return cols + swaps
    key = _mse_key(reports)
    label = {"mse_paper": "MSE (paper scale)", "mse_physical": "MSE (physical)",
             "mse_paper_compatible": "MSE (paper-compatible)"}.get(key, "MSE")
    cols = [Column(f"{label} t+{h}", h, key) for h in horizons]
    if key == "mse_physical" and _differs(reports, "mse_paper_compatible", key):
        cols += [Column(f"MSE (paper-compatible) t+{h}", h, "mse_paper_compatible") for h in horizons]
    if kind == "prediction" and has_ssim:
        cols += [Column(f"SSIM t+{h}", h, "ssim") for h in horizons]
    return cols


def _differs(reports: list[dict[str, Any]], a: str, b: str) -> bool:
    for r in reports:
        for res in r["horizons"].values():
            x, y = res.get(f"{a}_mean"), res.get(f"{b}_mean")
            if x is not None and y is not None and abs(x - y) > 1e-9 * max(abs(x), abs(y), 1e-300):
                return True
    return False


def value(report: dict[str, Any], col: Column, *, baseline: bool = False) -> float | None:
    res = report["horizons"].get(col.horizon)
    if res is None:
        return None
    if col.swap:
        if baseline:
            return None
        swap = res.get("swap") or {}
        return swap.get(f"{col.key}_mean") if swap.get("ground_truth") else None
    return res.get(f"baseline_{col.key}_mean" if baseline else f"{col.key}_mean")


def fmt(key: str, v: float | None) -> str:
    if v is None:
        return DASH
    if key.startswith("mse"):
        return f"{v:.3e}" if 0 < abs(v) < 0.01 else f"{v:.4g}"
    return f"{v:.2f}" if key == "psnr" else f"{v:.4f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_table(reports: list[dict[str, Any]], labels: list[str] | None = None, *, baseline: bool = True,
              notes: bool = True) -> str:
    """The Markdown table of runs of one data set (layout in the module docstring), with metric notes."""
    if not reports:
        raise VarsepError("no evaluation report to tabulate")
    labels = labels or [str(r.get("label") or f"run {i + 1}") for i, r in enumerate(reports)]
    cols = columns(reports)
    rows = [[label, *(fmt(c.key, value(r, c)) for c in cols)]
            for label, r in zip(labels, reports, strict=True)]
    if baseline:
        rows.append([BASELINE_LABEL, *(fmt(c.key, value(reports[0], c, baseline=True)) for c in cols)])
    text = markdown_table(["Model", *(c.header for c in cols)], rows)
    if notes:
        text += "\n" + "\n".join(_notes(reports, cols)) + "\n"
    return text


def _notes(reports: list[dict[str, Any]], cols: list[Column]) -> list[str]:
    first = reports[0]
    definitions = {}
    for r in reports:
        definitions.update(r.get("definitions", {}))
    lines = [f"Data: {first['data']}; each value is the mean over the predicted steps t+1…t+h, averaged over "
             f"the test windows."]
    for key in dict.fromkeys(c.key for c in cols):
        if key in definitions:
            lines.append(f"- {key}: {definitions[key]}")
    if any(c.swap for c in cols):
        swap = next((res["swap"] for r in reports for res in r["horizons"].values()
                     if (res.get("swap") or {}).get("ground_truth")), None)
        if swap:
            lines.append(f"- Swap: {swap['pairing']}; the better score over {swap['assignments']} ground "
                         f"truth(s) is kept per sequence and metric.")
    limited = [str(r.get("label")) for r in reports if r.get("limit")]
    if limited:
        lines.append(f"- Scored on a subset of the test windows (--limit): {', '.join(limited)}.")
    return lines


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in ``text`` as one dict per row (header → cell text)."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("|")), None)
    if start is None:
        raise ValueError("no Markdown table found")
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append([cell.strip() for cell in ln.strip("|").split("|")])
    header, body = block[0], [row for row in block[2:]]
    return [dict(zip(header, row, strict=True)) for row in body]


# ------------------------------------------------------------------------------------------ runs
def find_metrics(path: str | Path) -> Path:
    """metrics.json of a run folder (RUN/eval/metrics.json), an eval folder, or the file itself."""
    path = Path(path)
    for candidate in (path, path / "metrics.json", path / "eval" / "metrics.json"):
        if candidate.is_file():
            return candidate
    raise VarsepError(f"{path} has no evaluation (expected {path / 'eval' / 'metrics.json'}); "
                      f"run: varsep evaluate {path}")


def load_report(path: str | Path) -> dict[str, Any]:
    file = find_metrics(path)
    try:
        report = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VarsepError(f"{file} is not valid JSON ({str(err)[:120]})") from None
    if not isinstance(report, dict) or not isinstance(report.get("horizons"), dict) or "data" not in report:
        raise VarsepError(f"{file} is not a varsep metrics.json (no 'horizons' or 'data')")
    return report


def load_reports(paths: list[str | Path], labels: list[str] | None = None
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """The evaluation reports at ``paths`` and their row names (``labels``, else the folder names)."""
    if labels is not None and len(labels) != len(paths):
        raise VarsepError(f"{len(labels)} labels given for {len(paths)} runs")
    reports = [load_report(p) for p in paths]
    return reports, labels or [_default_label(p, r) for p, r in zip(paths, reports, strict=True)]


def compare_runs(paths: list[str | Path], labels: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """Markdown (one table per data set) and a JSON-able summary of the runs at ``paths``."""
    reports, names = load_reports(paths, labels)
    by_data: dict[str, list[int]] = {}
    for i, r in enumerate(reports):
        by_data.setdefault(r["data"], []).append(i)
    parts, summary = [], {"runs": []}
    for data, members in by_data.items():
        subset = [reports[i] for i in members]
        parts.append(f"## {data}\n\n" + run_table(subset, [names[i] for i in members]))
        cols = columns(subset)
        for i in members:
            summary["runs"].append({"label": names[i], "path": str(paths[i]), "data": data,
                                    "values": {c.header: value(reports[i], c) for c in cols}})
    return "\n".join(parts), summary


def report_curves(paths: list[str | Path], labels: list[str] | None = None
                  ) -> dict[tuple[str, str], tuple[str, dict[str, list[float]]]]:
    """Per-step MSE curves of the runs at ``paths``, keyed (data set, horizon): (MSE key, {label: curve}).

    Each run's curve is its reported MSE (the data set's scale, see ``headline_mse``); the first run's
    "repeat last frame" curve is added for reference.
    """
    reports, names = load_reports(paths, labels)
    out: dict[tuple[str, str], tuple[str, dict[str, list[float]]]] = {}
    for name, r in zip(names, reports, strict=True):
        for horizon, res in r["horizons"].items():
            key = headline_mse(res)
            if key not in res:  # a metrics.json with means only
                continue
            _, curves = out.setdefault((r["data"], horizon), (key, {}))
            curves[name] = list(res[key])
    for (data, horizon), (key, curves) in out.items():
        first = next(r for r in reports if r["data"] == data and horizon in r["horizons"])
        baseline = first["horizons"][horizon].get(f"baseline_{key}")
        if baseline is not None:
            curves[BASELINE_LABEL] = list(baseline)
    return out


def _default_label(path: str | Path, report: dict[str, Any]) -> str:
    p = Path(path)
    if p.name == "metrics.json":
        p = p.parent
    if p.name == "eval":
        p = p.parent
    return p.name or str(report.get("label", path))
