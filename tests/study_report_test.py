"""The study report's analysis on synthetic results with known answers."""

import itertools
import os

import numpy as np
import pytest

from ebm_jax import study_report, sweep
from testutil import tiny_toy_config

AXES = ["sampler.num_steps", "optimizer.learning_rate", "sampler.noise_std",
        "model.spectral_norm"]
ROLES = {"K": AXES[0], "lr": AXES[1], "noise": AXES[2], "sn": AXES[3]}


def synthetic_rows(quality_fn, diverged_fn=lambda k, lr, noise, sn: False, sps=None):
  rows = []
  for k, lr, noise, sn in itertools.product((5, 100), (1e-3, 1e-2), (0.0, 0.1), (False, True)):
    diverged = diverged_fn(k, lr, noise, sn)
    rows.append({
        "cell": f"K{k}-lr{lr}-n{noise}-sn{sn}", AXES[0]: k, AXES[1]: lr, AXES[2]: noise,
        AXES[3]: sn, "status": "diverged" if diverged else "finished",
        "diverged_at_step": 7 if diverged else "", "quality": np.nan if diverged else
        quality_fn(k, lr, noise, sn), "stable": not diverged, "dynamics": "stable",
        "models_in_group": 4, "steps_per_sec": (sps or {5: 10.0, 100: 2.0})[k]})
  return rows


def test_claim_1_names_the_setting_with_the_largest_effect():
  k_dominant = synthetic_rows(lambda k, lr, noise, sn: (10.0 if k == 5 else 0.1) * (1 + lr))
  verdict, lines = study_report.claim_k_matters_most(k_dominant, AXES, ROLES, "kl")
  assert verdict == "supported"
  lr_dominant = synthetic_rows(lambda k, lr, noise, sn: (100.0 if lr == 1e-2 else 1.0) * k)
  verdict, lines = study_report.claim_k_matters_most(lr_dominant, AXES, ROLES, "kl")
  assert verdict == "not supported"
  assert "Largest here: **optimizer.learning_rate** (2.00 orders" in "\n".join(lines)


def test_claim_2_reads_divergence_at_small_k_and_the_spectral_norm_rescue():
  rows = synthetic_rows(lambda *a: 1.0, diverged_fn=lambda k, lr, noise, sn: (
      k == 5 and lr == 1e-2 and (not sn or noise > 0)))
  verdict, lines = study_report.claim_small_k_low_lr(rows, AXES, ROLES, "kl")
  text = "\n".join(lines)
  assert "K=5: 0.001; K=100: 0.01" in text        # 3 of 4 K=5, lr=1e-2 cells diverged
  assert "diverged or exploding 1 with vs 2 without" in text
  assert verdict == "supported"


def test_claim_3_needs_stability_and_cost():
  rows = synthetic_rows(lambda *a: 1.0)
  verdict, lines = study_report.claim_large_k_stable_slow(rows, AXES, ROLES, "kl")
  assert verdict == "supported" and "one update takes 5.0x as long" in "\n".join(lines)
  cheap = synthetic_rows(lambda *a: 1.0, sps={5: 10.0, 100: 9.0})
  assert study_report.claim_large_k_stable_slow(cheap, AXES, ROLES, "kl")[0] == "not supported"


def test_claim_4_compares_matched_noiseless_and_noisy_cells():
  better = synthetic_rows(lambda k, lr, noise, sn: 1.0 if noise == 0 else 1.2)
  verdict, lines = study_report.claim_noiseless_comparable(better, AXES, ROLES, "kl")
  assert verdict == "supported" and "median 0.833" in "\n".join(lines)
  worse = synthetic_rows(lambda k, lr, noise, sn: 3.0 if noise == 0 else 1.0)
  assert study_report.claim_noiseless_comparable(worse, AXES, ROLES, "kl")[0] == "not supported"


def test_claims_without_their_axes_are_not_tested():
  rows = synthetic_rows(lambda *a: 1.0)
  verdict, lines = study_report.claim_noiseless_comparable(rows, AXES[:2], ROLES, "kl")
  assert verdict == "not tested" and "noise" in lines[0]


def test_runaway_gradient_norm_is_not_called_stable():
  assert study_report._r_t_growth(np.geomspace(1, 1e5, 100)) > 100
  assert study_report._r_t_growth(np.full(100, 0.05)) == pytest.approx(1.0)


def test_report_states_a_verdict_per_claim_with_its_figures(tmp_path):
  grid = sweep.Grid("g", {"sampler.num_steps": (2, 4), "optimizer.learning_rate": (1e-3, 1e-2),
                          "sampler.noise_std": (0.0, 0.1)},
                    base=tiny_toy_config(num_train_steps=4))
  study = sweep.Sweep([grid], roles={"K": "sampler.num_steps", "lr": "optimizer.learning_rate",
                                     "noise": "sampler.noise_std"})
  cells = sweep.run_sweep(study, None, str(tmp_path), log=lambda m: None)
  path = study_report.write_report(study, cells, str(tmp_path), title="tiny")
  with open(path) as f:
    report = f.read()
  for claim in ("Claim 1.", "Claim 2.", "Claim 3.", "Claim 4."):
    assert claim in report
  assert "Learning rate: " in report and "Spectral norm at" not in report   # no sn axis
  assert "8 cells (8 run" in report
  with open(tmp_path / "results.csv") as f:
    header, *rows = f.read().splitlines()
  assert len(rows) == 8
  for column in ("sampler.num_steps", "status", "d_s_t_mean", "r_t_mean", "kl_true_kde",
                 "steps_per_sec"):
    assert column in header.split(",")
  assert os.path.exists(tmp_path / "plots" / "heatmap-g-noise0.png")
  assert any(p.startswith("traces-g-noise0.1-K") for p in os.listdir(tmp_path / "plots"))
