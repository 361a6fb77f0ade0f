"""Tests for benchmarks/quality.py's bookkeeping: settings stamps, the spread over seeds and the
differences paired by seed."""

import argparse
import importlib.util
import json
import os

import numpy as np
import pytest

from conftest import REPO_ROOT


def load_quality():
  spec = importlib.util.spec_from_file_location(
      "quality_benchmark", os.path.join(REPO_ROOT, "benchmarks", "quality.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def make_args(quality, **overrides):
  values = {"max_train_examples": 0, "predecessor_epochs": 3.0, "stage1_epochs": 2.0,
            "stage2_epochs": 1.0, "learning_rate": 5e-5, "stage1_learning_rate": None,
            "stage2_learning_rate": 3e-5,
            "batch_size": 32, "max_seq_length": 128, "evals_per_run": 6, "linear_start": 0.3,
            "linear_reach_fraction": 0.6, "stage1_also_train": "", "suc_init": "first",
            "kd_alpha": 0.5, "kd_temperature": 2.0, "kd_hidden_weight": 1.0,
            "kd_module_weight": 1.0, "kd_module_attention_weight": 0.0, "kd_augment": 0}
  assert set(values) == set(quality.RUN_SETTINGS)
  values.update(overrides)
  return argparse.Namespace(**values)


def test_settings_are_recorded_then_checked(tmp_path):
  quality = load_quality()
  base = str(tmp_path)
  quality.check_settings(base, make_args(quality))
  with open(os.path.join(base, "settings.json")) as f:
    assert json.load(f)["stage1_epochs"] == 2.0
  quality.check_settings(base, make_args(quality))  # same settings: reused
  with pytest.raises(SystemExit) as raised:
    quality.check_settings(base, make_args(quality, stage1_epochs=3.0, batch_size=16))
  message = str(raised.value)
  assert "stage1_epochs=2.0, now 3.0" in message and "batch_size=32, now 16" in message
  assert "--work_dir" in message


def test_settings_added_later_take_their_old_default(tmp_path):
  quality = load_quality()
  base = str(tmp_path)
  recorded = vars(make_args(quality))
  del recorded["stage1_also_train"]  # a work_dir made before the ablation flags existed
  del recorded["suc_init"]
  del recorded["stage1_learning_rate"]
  for name in ("kd_alpha", "kd_temperature", "kd_hidden_weight", "kd_module_weight",
               "kd_module_attention_weight", "kd_augment"):  # before distillation existed
    del recorded[name]
  with open(os.path.join(base, "settings.json"), "w") as f:
    json.dump(recorded, f)
  quality.check_settings(base, make_args(quality))  # the old default: reused
  with pytest.raises(SystemExit) as raised:
    quality.check_settings(base, make_args(quality, stage1_also_train="head"))
  assert "stage1_also_train=''" in str(raised.value)
  with pytest.raises(SystemExit) as raised:
    quality.check_settings(base, make_args(quality, suc_init="group_last"))
  assert "suc_init='first', now 'group_last'" in str(raised.value)
  with pytest.raises(SystemExit) as raised:
    quality.check_settings(base, make_args(quality, stage1_learning_rate=1e-4))
  assert "stage1_learning_rate=None, now 0.0001" in str(raised.value)
  with pytest.raises(SystemExit) as raised:
    quality.check_settings(base, make_args(quality, kd_alpha=0.9))
  assert "kd_alpha=0.5, now 0.9" in str(raised.value)


def test_spread_is_the_sample_standard_deviation():
  quality = load_quality()
  assert quality.spread([0.8]) == 0.0
  # values 0.80 and 0.84: mean 0.82, squared deviations 0.0004 each, / (2 - 1) -> sd 0.02828.
  assert quality.spread([0.80, 0.84]) == pytest.approx(0.0282843, abs=1e-6)


def test_curve_over_seeds_averages_and_places_stage2_after_stage1():
  quality = load_quality()
  # Stage 1 evaluated at updates 50 and 100, stage 2 (steps restart) at 25 and 50.
  seed1 = {"theseus_const": [(50, {"f1": 0.80}), (100, {"f1": 0.82}),
                             (25, {"f1": 0.84}), (50, {"f1": 0.86})]}
  seed2 = {"theseus_const": [(50, {"f1": 0.82}), (100, {"f1": 0.82}),
                             (25, {"f1": 0.86}), (50, {"f1": 0.90})]}
  steps, mean, sd = quality.curve_over_seeds([seed1, seed2], "theseus_const", "f1", 100)
  assert list(steps) == [50, 100, 125, 150]
  assert mean == pytest.approx([0.81, 0.82, 0.85, 0.88])
  assert sd == pytest.approx([0.0141421, 0.0, 0.0141421, 0.0282843], abs=1e-6)
  # An evaluation one seed lacks (a resumed run) is left out for all.
  del seed2["theseus_const"][1]
  steps, mean, sd = quality.curve_over_seeds([seed1, seed2], "theseus_const", "f1", 100)
  assert list(steps) == [50, 125, 150] and mean == pytest.approx([0.81, 0.85, 0.88])


def test_ablation_notes_name_only_the_settings_changed_from_the_defaults():
  quality = load_quality()
  defaults = quality.build_parser().parse_args([])
  assert quality.ablation_notes(defaults) == []
  changed = quality.build_parser().parse_args(["--suc_init=group_first",
                                               "--stage1_learning_rate=1e-4",
                                               "--stage2_learning_rate=5e-5"])
  assert quality.ablation_notes(changed) == [
      "ablation: successors start from predecessor layers chosen by group_first",
      "ablation: stage 1 learning rate 0.0001",
      "ablation: stage 2 learning rate 5e-05"]


def test_paired_difference_is_by_seed(capsys):
  quality = load_quality()
  values = {"theseus_module": [0.80, 0.85, 0.83], "truncation_kd": [0.82, 0.83, 0.81],
            "predecessor": [0.9, 0.9, 0.9]}
  mean, se, diffs = quality.paired_difference(values, "theseus_module", "truncation_kd")
  assert diffs == pytest.approx([-0.02, 0.02, 0.02])
  assert mean == pytest.approx(0.02 / 3)
  # sample sd of the differences / sqrt(3)
  assert se == pytest.approx(np.std([-0.02, 0.02, 0.02], ddof=1) / 3 ** 0.5)
  assert quality.paired_difference({"a": [0.5], "b": [0.25]}, "a", "b") == (0.25, 0.0, [0.25])
  quality.print_pairs(values)
  assert capsys.readouterr().out.strip() == (
      "theseus_module - truncation_kd: +0.0067 (standard error 0.0133; by seed -0.0200, +0.0200, "
      "+0.0200)")


def _write_part(path, seeds, values, settings, accuracy=None):
  with open(path, "w") as f:
    json.dump({"mrpc": {"metric": "f1", "seeds": seeds, "values": values,
                        "accuracy_values": accuracy or {}, "settings": settings}}, f)
  return str(path)


def test_earlier_parts_of_a_sweep_join_by_seed_and_other_recipes_are_refused(tmp_path):
  quality = load_quality()
  settings = vars(make_args(quality))
  methods = quality.methods_run("theseus_module,truncation_kd")
  assert methods == ["predecessor", "theseus_module", "truncation_kd"]
  first = _write_part(tmp_path / "a.json", [3], {
      "predecessor": [0.9], "theseus_module": [0.85], "truncation_kd": [0.84]}, settings,
      {"predecessor": [0.8], "theseus_module": [0.75], "truncation_kd": [0.76]})
  second = _write_part(tmp_path / "b.json", [1, 4], {
      "predecessor": [0.91, 0.92], "theseus_module": [0.80, 0.86],
      "truncation_kd": [0.82, 0.81]}, settings,
      {"predecessor": [0.7, 0.6], "theseus_module": [0.65, 0.55], "truncation_kd": [0.6, 0.5]})
  earlier = quality.read_earlier([first, second], "mrpc", settings, methods, [2])
  this_run = {"metric": "f1", "seeds": [2], "settings": settings,
              "values": {"predecessor": [0.93], "theseus_module": [0.83],
                         "truncation_kd": [0.83]},
              "accuracy_values": {"predecessor": [0.5], "theseus_module": [0.45],
                                  "truncation_kd": [0.44]}}
  merged = quality.merge_earlier(this_run, earlier)
  assert merged["seeds"] == [1, 2, 3, 4]
  assert merged["values"]["theseus_module"] == [0.80, 0.83, 0.85, 0.86]
  assert merged["values"]["truncation_kd"] == [0.82, 0.83, 0.84, 0.81]
  assert merged["accuracy_values"]["predecessor"] == [0.7, 0.5, 0.8, 0.6]
  assert merged["merged_from"] == [first, second]
  _, _, diffs = quality.paired_difference(merged["values"], "theseus_module", "truncation_kd")
  assert diffs == pytest.approx([-0.02, 0.0, 0.01, 0.05])
  # Refused before any training: a seed twice, other settings, other methods, no seeds kept.
  with pytest.raises(SystemExit, match="seed 3 of mrpc is in"):
    quality.read_earlier([first], "mrpc", settings, methods, [3])
  with pytest.raises(SystemExit, match="seed 3 of mrpc is in"):
    quality.read_earlier([first, first], "mrpc", settings, methods, [2])
  with pytest.raises(SystemExit, match=r"kd_alpha=0.5, now 0.9"):
    quality.read_earlier([first], "mrpc", dict(settings, kd_alpha=0.9), methods, [2])
  with pytest.raises(SystemExit, match="has the methods"):
    quality.read_earlier([first], "mrpc", settings, quality.methods_run("theseus_module"), [2])
  with open(first) as f:
    old = json.load(f)
  del old["mrpc"]["seeds"]
  with open(first, "w") as f:
    json.dump(old, f)
  with pytest.raises(SystemExit, match="no mrpc results with their seeds"):
    quality.read_earlier([first], "mrpc", settings, methods, [2])
  with pytest.raises(SystemExit, match="cannot read"):
    quality.read_earlier([str(tmp_path / "absent.json")], "mrpc", settings, methods, [2])
