"""Paper-style tables: layouts per kind of data set, values parsed back, `varsep report` on two runs."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_MODEL

from varsep.cli import main
from varsep.config import load_config
from varsep.eval.evaluation import EvalOptions, evaluate
from varsep.eval.tables import compare_runs, layout, parse_markdown_table, report_curves, run_table
from varsep.forecaster import load
from varsep.train import fit


def result(**means):
    """A horizon's result holding the given means (and baselines at twice the MSE, half the SSIM)."""
    out = {"windows": 10}
    for key, v in means.items():
        if key == "swap":
            out["swap"] = v
            continue
        out[f"{key}_mean"] = v
        out[f"baseline_{key}_mean"] = 2 * v if key.startswith("mse") else v / 2
    return out


def report(data, label, horizons, **extra):
    return {"data": data, "label": label, "horizons": horizons, "limit": None,
            "definitions": {"mse": "mean over pixels", "ssim": "SSIM"}, **extra}


def test_prediction_layout_like_table_1():
    six = result(mse=0.5, mse_physical=0.86, mse_paper_compatible=0.86, ssim=0.7466)
    ten = result(mse=0.9, mse_physical=1.43, mse_paper_compatible=1.43, ssim=0.6577)
    sst = report("sst", "ours", {"6": six, "10": ten})
    rows = parse_markdown_table(run_table([sst]))
    assert list(rows[0]) == ["Model", "MSE (physical) t+6", "MSE (physical) t+10", "SSIM t+6", "SSIM t+10"]
    assert rows[0] == {"Model": "ours", "MSE (physical) t+6": "0.86", "MSE (physical) t+10": "1.43",
                       "SSIM t+6": "0.7466", "SSIM t+10": "0.6577"}
    assert rows[1]["Model"] == "Repeat last frame" and rows[1]["MSE (physical) t+6"] == "1.72"
    # the paper-compatible MSE gets its own, labelled columns only when it differs
    sst["horizons"]["6"]["mse_paper_compatible_mean"] = 0.80
    assert "MSE (paper-compatible) t+6" in parse_markdown_table(run_table([sst]))[0]
    wave = report("waveeq", "w", {"40": result(mse=1.44e-4, ssim=0.99)})
    assert parse_markdown_table(run_table([wave]))[0]["MSE t+40"] == "1.440e-04"


def test_swap_layout_like_tables_2_and_4():
    swap = {"ground_truth": True, "assignments": 2, "pairing": "i ↔ i + n/2", "psnr_mean": 18.42,
            "ssim_mean": 0.8368}
    full = report("mmnist", "Ours", {
        "10": result(psnr=21.70, ssim=0.9088, mse=0.01, swap=swap),
        "95": result(psnr=17.50, ssim=0.7990, mse=0.02, swap=dict(swap, psnr_mean=16.5))})
    no_s = report("mmnist", "Ours (without S)", {"10": result(psnr=20.46, ssim=0.8867, mse=0.01),
                                                 "95": result(psnr=14.95, ssim=0.6707, mse=0.03)})
    assert layout([full, no_s]) == "swap"
    text = run_table([full, no_s])
    rows = parse_markdown_table(text)
    assert list(rows[0])[1:] == ["Pred. (t+10) PSNR", "Pred. (t+10) SSIM", "Pred. (t+95) PSNR",
                                 "Pred. (t+95) SSIM", "Swap (t+10) PSNR", "Swap (t+10) SSIM",
                                 "Swap (t+95) PSNR", "Swap (t+95) SSIM"]
    assert rows[0]["Swap (t+95) PSNR"] == "16.50" and rows[0]["Pred. (t+10) SSIM"] == "0.9088"
    assert rows[1]["Swap (t+10) PSNR"] == "—" and rows[1]["Pred. (t+95) PSNR"] == "14.95"
    assert rows[2]["Swap (t+10) SSIM"] == "—"  # the baseline has no swap
    assert "better score over 2 ground truth(s)" in text


def test_paper_scale_layout_like_table_3():
    taxi = report("taxibj", "Ours", {"4": result(mse=1.93e-4, mse_paper=39.5, mse_physical=3.1, ssim=0.9)})
    rows = parse_markdown_table(run_table([taxi]))
    assert list(rows[0]) == ["Model", "MSE (paper scale) t+4"] and rows[0]["MSE (paper scale) t+4"] == "39.5"


def test_compare_runs_groups_data_sets(tmp_path):
    for name, data in (("a", "waveeq"), ("b", "waveeq"), ("c", "sst")):
        (tmp_path / name / "eval").mkdir(parents=True)
        horizons = {"40": result(mse=0.001 * (ord(name) - 96), ssim=0.9)}
        (tmp_path / name / "eval" / "metrics.json").write_text(json.dumps(report(data, name, horizons)))
    paths = [tmp_path / "a", tmp_path / "b" / "eval", tmp_path / "c" / "eval" / "metrics.json"]
    text, summary = compare_runs(paths)
    assert text.count("## ") == 2 and "## waveeq" in text and "## sst" in text
    rows = parse_markdown_table(text)
    assert [r["Model"] for r in rows] == ["a", "b", "Repeat last frame"]
    assert float(rows[1]["MSE t+40"]) == pytest.approx(0.002)
    assert summary["runs"][2] == {"label": "c", "path": str(tmp_path / "c" / "eval" / "metrics.json"),
                                  "data": "sst", "values": {"MSE t+40": 0.003, "SSIM t+40": 0.9}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_waveeq):
    root = tmp_path_factory.mktemp("report")
    runs = []
    for seed in (0, 1):
        run = root / f"seed{seed}"
        fit(load_config("waveeq", {"data.root": str(tiny_waveeq), **TINY_MODEL, "seed": seed,
                                   "trainer.max_epochs": 1}), run, progress=False)
        evaluate(load(run, "last"), out_dir=run / "eval", options=EvalOptions(limit=6, progress=False, figures=False))
        runs.append(run)
    return runs


def test_report_command_on_two_runs(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp" / "table.md"
    assert main(["report", *map(str, two_runs), "--out", str(out), "--labels", "first,second"]) == 0
    printed = capsys.readouterr().out
    rows = parse_markdown_table(out.read_text())
    assert [r["Model"] for r in rows] == ["first", "second", "Repeat last frame"]
    for run, row in zip(two_runs, rows, strict=False):
        saved = json.loads((run / "eval" / "metrics.json").read_text())
        assert float(row["MSE t+40"]) == pytest.approx(saved["horizons"]["40"]["mse_mean"], rel=1e-3)
    assert rows[0]["MSE t+40"] != rows[1]["MSE t+40"]  # different seeds, different models
    assert "| first |" in printed
    summary = json.loads(out.with_suffix(".json").read_text())
    assert [r["label"] for r in summary["runs"]] == ["first", "second"]
    figure = out.with_name("table_waveeq_mse_t40.png")
    assert figure.stat().st_size > 0 and str(figure) in printed


def test_report_curves_hold_each_runs_per_step_mse(two_runs):
    curves = report_curves(two_runs, ["first", "second"])
    assert list(curves) == [("waveeq", "40")]
    key, lines = curves["waveeq", "40"]
    assert key == "mse" and list(lines) == ["first", "second", "Repeat last frame"]
    for run, label in zip(two_runs, ("first", "second"), strict=True):
        saved = json.loads((run / "eval" / "metrics.json").read_text())["horizons"]["40"]
        assert lines[label] == saved["mse"] and len(lines[label]) == 40
    assert lines["Repeat last frame"] == saved["baseline_mse"]


def test_report_errors(tmp_path, two_runs, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "varsep evaluate" in capsys.readouterr().err
    assert main(["report", str(two_runs[0]), "--labels", "a,b", "--out", str(tmp_path / "r.md")]) == 2
    assert "2 labels given for 1 runs" in capsys.readouterr().err
