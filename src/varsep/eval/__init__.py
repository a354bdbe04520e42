"""Evaluation: metrics (the maths), scoring rules, the content swap, protocols, tables and figures.

- :mod:`varsep.eval.metrics` — MSE, PSNR, SSIM per frame (pure tensor functions);
- :mod:`varsep.eval.scoring` — what is scored for each predicted frame and on which scale;
- :mod:`varsep.eval.swap` — the content-swap protocol;
- :mod:`varsep.eval.evaluation` — ``evaluate(run, options=EvalOptions(…))``: every test horizon of a run;
- :mod:`varsep.eval.ablation` — the paper's Table 4 ablations, trained and scored side by side;
- :mod:`varsep.eval.tables` / :mod:`varsep.eval.plots` — paper-style tables and figures.
"""

from varsep.eval.evaluation import EvalOptions, evaluate, score_horizon, summary_lines

__all__ = ["EvalOptions", "evaluate", "score_horizon", "summary_lines"]
