"""`varsep ablate`: variants of Table 4 trained with one seed and one budget, a comparison table, and
resumption (finished variants skipped, a larger budget continued)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import TINY_MODEL

from varsep.cli import main
from varsep.config import load_config
from varsep.errors import ConfigError
from varsep.eval import EvalOptions
from varsep.eval.ablation import VARIANTS, ablate, parse_variants, unavailable, variant_config
from varsep.eval.tables import parse_markdown_table
from varsep.forecaster import load
from varsep.spec import DataSpec


def test_variant_configs():
    base = load_config("waveeq")
    assert variant_config(base, "full").to_dict() == base.to_dict()
    assert variant_config(base, "without_s").model.content is False
    assert variant_config(base, "lambda_ae_0").loss.lambda_ae == 0
    assert variant_config(base, "lambda_s_0").loss.lambda_s == 0
    assert variant_config(base, "lambda_t_0").loss.lambda_t == 0
    gru = variant_config(base, "gru", budget_steps=7)
    assert gru.model.dynamics == "gru" and gru.trainer.max_steps == 7 and gru.seed == base.seed
    sst = load_config("sst")
    assert sst.model.skips and variant_config(sst, "without_s").model.skips is False
    assert list(VARIANTS) == ["full", "without_s", "lambda_ae_0", "lambda_s_0", "lambda_t_0", "gru"]


def test_variant_names():
    assert parse_variants(None) == list(VARIANTS)
    assert parse_variants("gru, full") == ["gru", "full"]
    with pytest.raises(ConfigError, match="choose among: full, without_s"):
        parse_variants("full,nope")


def test_gru_is_unavailable_for_two_dimensional_codes():
    config = variant_config(load_config("sst"), "gru")
    stub = SimpleNamespace(spec=DataSpec((1, 64, 64), 4, 6), default_encoder="vgg64_skip2d", default_anchor="none",
                           default_decoder="vgg64_skip2d")
    assert "vector codes" in unavailable(config, stub)


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory, tiny_waveeq):
    root = tmp_path_factory.mktemp("ablation") / "abl"
    config = load_config("waveeq", {"data.root": str(tiny_waveeq), **TINY_MODEL})
    logs: list[str] = []
    summary = ablate(config, root, variants=["full", "without_s", "gru"], budget_steps=3, log=logs.append,
                     options=EvalOptions(limit=6, figures=False, progress=False))
    return root, config, summary, logs


def test_ablation_table_and_run_folders(tiny_ablation):
    root, _, summary, logs = tiny_ablation
    rows = parse_markdown_table((root / "ablation.md").read_text())
    assert [r["Model"] for r in rows] == ["Ours", "Ours (without S)", "Ours (GRU)", "Repeat last frame"]
    assert list(rows[0]) == ["Model", "MSE t+40", "SSIM t+40"]
    saved = json.loads((root / "ablation.json").read_text())
    assert [v["variant"] for v in saved["variants"]] == ["full", "without_s", "gru"]
    for row, variant in zip(rows, saved["variants"], strict=False):
        metrics = json.loads((root / variant["variant"] / "eval" / "metrics.json").read_text())
        assert float(row["MSE t+40"]) == pytest.approx(metrics["horizons"]["40"]["mse_mean"], rel=1e-3)
        assert variant["step"] == 3 and load(root / variant["variant"], "last").step == 3
    configs = [load_config(root / v / "config.yaml") for v in ("full", "without_s", "gru")]
    assert {c.seed for c in configs} == {0} and {c.trainer.max_steps for c in configs} == {3}
    assert [c.model.content for c in configs] == [True, False, True]
    assert configs[2].model.dynamics == "gru"
    without_s = json.loads((root / "without_s" / "eval" / "metrics.json").read_text())
    assert "swap" not in without_s["horizons"]["40"]
    assert all(line.startswith(f"[{v}] training") for line, v in zip(logs, ("full", "without_s", "gru"),
                                                                       strict=True))


def test_ablation_skips_finished_variants_and_continues_a_larger_budget(tiny_ablation):
    root, config, _, _ = tiny_ablation
    before = (root / "full" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    logs: list[str] = []
    ablate(config, root, variants=["full", "without_s"], budget_steps=3, log=logs.append,
           options=EvalOptions(limit=6, figures=False, progress=False))
    assert all("already trained" in line for line in logs)
    assert (root / "full" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before
    logs.clear()
    summary = ablate(config, root, variants=["full"], budget_steps=5, log=logs.append,
                     options=EvalOptions(limit=6, figures=False, progress=False))
    assert logs == [f"[full] resuming in {root / 'full'}"]
    assert load(root / "full", "last").step == 5 and summary["variants"][0]["step"] == 5


def test_ablate_command(tmp_path, tiny_waveeq, capsys):
    tiny = [arg for k, v in TINY_MODEL.items() for arg in (f"--{k}", json.dumps(v))]
    code = main(["ablate", "-c", "waveeq", "--budget-steps", "2", "--run-root", str(tmp_path / "a"),
                 "--variants", "lambda_t_0", "--limit", "4", "--no-figures", "--quiet",
                 "--data.root", str(tiny_waveeq), *tiny])
    assert code == 0
    out = capsys.readouterr().out
    assert "| Ours (λ_T = 0) |" in out and (tmp_path / "a" / "ablation.md").is_file()
    assert load_config(tmp_path / "a" / "lambda_t_0" / "config.yaml").loss.lambda_t == 0
    assert main(["ablate", "-c", "waveeq", "--variants", "bogus", "--run-root", str(tmp_path / "b")]) == 2


def test_changed_settings_are_not_mixed_into_an_existing_ablation(tiny_ablation):
    root, config, _, _ = tiny_ablation
    changed = load_config(root / "full" / "config.yaml", {"loss.lambda_pred": 1.0, "trainer.max_steps": -1,
                                                          "trainer.max_epochs": 2})
    with pytest.raises(ConfigError, match="another --run-root"):
        ablate(changed, root, variants=["full"], budget_steps=3, log=print,
               options=EvalOptions(figures=False, progress=False))
