"""The figures of benchmarks/speed.py: its targets, checked, and the printed tables.

Everything here reads the results dict speed.py writes as JSON (its "meta" holds the command's
settings), so a saved speed.json can be printed again:
  python benchmarks/speed_report.py runs/speed/speed.json
"""

import json
import sys

# Targets of the issue (checked and printed, never tuned for).
TARGET_SPEEDUP = {3: 1.8, 2: 2.6}  # inference, batch 32, length 128, 6 -> n
TARGET_STAGE1_VS_BOTH = 0.55  # stage-1 step time at p = 0.5 / both-branches reference
TARGET_TRAIN_VS_TORCH = 1.5  # predecessor training tokens/s, TF / PyTorch + transformers
TARGET_INFERENCE_VS_TORCH = 1.2  # predecessor inference sequences/s, TF / PyTorch, every shape


def fmt(value, spec="%.1f"):
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  return spec % value


def print_table(headers, rows):
  widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
  line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
  print(line)
  print("-" * len(line))
  for r in rows:
    print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))


def print_header(meta):
  """The machine, the settings and whether other work loaded the machine during the run."""
  print("\n" + "=" * 100)
  print("Speed benchmark  (%s; %s; os.cpu_count()=%s, usable cores=%s, --threads=%s)"
        % (meta["device"], meta["tensorflow"], meta["cpu_count"], meta["usable_cores"],
           meta["args"]["threads"] or "0 (framework defaults)"))
  if meta.get("note"):
    print("NOTE: " + meta["note"])
  loads = [meta.get("load_average_start"), meta.get("load_average_end")]
  if all(loads):
    cores = meta["usable_cores"] or meta["cpu_count"] or 1
    # Before the run the load is other programs'; at its end it includes this benchmark's.
    busy = loads[0][0] > 0.5 * cores or loads[1][0] > 1.5 * cores
    print("Load average (1 min) at start %.1f, at end %.1f on %s cores%s" % (
        loads[0][0], loads[1][0], meta["usable_cores"],
        ": the machine was busy with other work, timings are noisy" if busy else ""))


def print_inference(inference, stats, sst2_dev_lengths, rounds):
  """One row per workload and model: latency, throughput, speedup, memory."""
  lengths = sst2_dev_lengths
  if lengths:
    print("SST-2 dev: %d sentences, tokens incl. [CLS]/[SEP]: mean %.1f, median %.0f, p90 %.0f,"
          " max %d" % (lengths["examples"], lengths["mean"], lengths["median"], lengths["p90"],
                       lengths["max"]))
  print("\nINFERENCE through the exported SavedModel (tf) or TFLite file (tflite) / "
        "BertForSequenceClassification (torch); medians over %d rounds" % rounds)
  rows = []
  for wname, entry in inference.items():
    for name, s in entry["models"].items():
      st = stats.get(name, {})
      rows.append([wname, "b%d" % entry["batch_size"], "%.1f" % entry["mean_padded_length"],
                   name, fmt(s["ms_per_call_p50"], "%.2f"), fmt(s["ms_per_call_p90"], "%.2f"),
                   fmt(s["sequences_per_s"]), fmt(s["real_tokens_per_s"], "%.0f"),
                   fmt(s["speedup_vs_tf_predecessor"], "%.2fx"),
                   fmt(st.get("peak_rss_mb"), "%.0f"), fmt(st.get("os_threads"), "%d")])
  print_table(["workload", "batch", "avg len", "model", "ms/call p50", "p90", "seq/s",
               "tok/s", "speedup", "peak RSS MB", "threads"], rows)


def print_training(training, ratios, stats, settings):
  """One row per training configuration, then the stage-1 ratios."""
  print("\nTRAINING step (forward + backward + optimizer), batch %d x %d, %s; medians over %d "
        "rounds" % (settings["train_batch_size"], settings["seq_length"],
                    settings["train_precision"], settings["rounds"]))
  rows = []
  for name, s in training.items():
    st = stats.get(name, {})
    rows.append([name, fmt(s["ms_per_step_p50"], "%.0f"), fmt(s["ms_per_step_mean"], "%.0f"),
                 fmt(s["steps_per_s"], "%.3f"), fmt(s["tokens_per_s"], "%.0f"),
                 fmt(s["speedup_vs_tf_predecessor"], "%.2fx"),
                 fmt(s.get("successor_draw_fraction"), "%.2f"),
                 fmt(st.get("trained_parameters"), "%d"),
                 fmt(st.get("peak_rss_mb"), "%.0f"), fmt(st.get("os_threads"), "%d")])
  print_table(["configuration", "ms/step p50", "mean", "steps/s", "tok/s", "vs pred",
               "suc draws", "trained params", "peak RSS MB", "threads"], rows)
  for k, v in ratios.items():
    print("  %s: %s" % (k, fmt(v, "%.0f" if v > 10 else "%.3f")))


def print_threads(all_stats):
  """The thread pools and oneDNN state of the workers, and GPU peak memory if any."""
  first = next(iter(all_stats.values()))
  print("\nThreads: TF intra_op=%s inter_op=%s, oneDNN %s%s" % (
      first.get("intra_op_threads"), first.get("inter_op_threads"),
      {True: "on", False: "off (TF_ENABLE_ONEDNN_OPTS unset or 0)", None: "unknown"}[
          first.get("onednn")],
      "".join("; %s: intra=%s inter=%s attn=%s" % (n, s["intra_op_threads"],
                                                   s["inter_op_threads"],
                                                   s.get("attn_implementation"))
              for n, s in all_stats.items() if n.startswith("torch"))))
  gpu = {n: s["accelerator_peak_mb"] for n, s in all_stats.items()
         if s.get("accelerator_peak_mb") is not None}
  if gpu:
    print("Accelerator peak memory (MB): " + ", ".join("%s %.0f" % kv for kv in gpu.items()))


def print_targets_and_profiles(targets, profiles):
  if targets:
    print("\nTARGETS")
    for t in targets:
      print("  [%s] %s: measured %s, target %s%s" % (
          "met" if t["met"] else ("MISSED" if t["met"] is not None else "n/a"), t["what"],
          fmt(t["measured"], "%.3f"), t["target"], (" (%s)" % t["detail"]) if t.get("detail")
          else ""))
  if profiles:
    print("\nPROFILE (one traced step each, its ops run one at a time; op time summed)")
    for name, prof in profiles.items():
      if not prof:
        continue
      tops = ", ".join("%s %.0f%%" % (o["op"], 100 * o["share"]) for o in prof["top_ops"][:6])
      split = (" (matrix products %.0f, the rest %.0f)" % (prof["matmul_ms"], prof["other_ms"])
               if "matmul_ms" in prof else "")  # runs saved before the split was recorded
      print("  %-34s traced %.0f ms, %d ops, op-time %.0f ms%s: %s"
            % (name, prof["traced_step_ms"], prof["num_nodes"], prof["op_time_ms_sum"], split,
               tops))


def print_scaling(scaling, precision, settings):
  print("\nTRAINING COMMAND, predecessor, batch %d x %d (tokens/s of the global batch): 1 "
        "process %.0f, 2 local workers %.0f (%.2fx) on %d cores"
        % (settings["train_batch_size"], settings["seq_length"],
           scaling["one_process_tokens_per_s"], scaling["two_workers_tokens_per_s"],
           scaling["two_vs_one"], scaling["cores"]))
  if isinstance(precision, dict):
    for name, value in precision.items():
      print("  %-24s %8.0f tokens/s" % (name, value))
  else:
    print("  precision / XLA: %s" % precision)


def report(results, json_path):
  """Prints the tables and targets of a speed.py results dict (written to `json_path`)."""
  meta = results["meta"]
  settings = meta["args"]
  print_header(meta)
  if "inference" in results:
    print_inference(results["inference"], results.get("inference_workers", {}),
                    results.get("sst2_dev_lengths"), settings["rounds"])
  if "training" in results:
    print_training(results["training"], results["training_ratios"],
                   results.get("training_workers", {}), settings)
  all_stats = dict(results.get("inference_workers", {}), **results.get("training_workers", {}))
  if all_stats:
    print_threads(all_stats)
  print_targets_and_profiles(results["targets"], results["profiles"])
  print("\nJSON: %s" % json_path)
  if "scaling" in results:
    print_scaling(results["scaling"], results.get("precision"), settings)


def check_targets(results, seq_length, num_layers):
  """Adds results["targets"]: each target of TARGET_* with its measured value and whether it is
  met, for the workloads and configurations the run measured."""
  targets = []
  inf = results.get("inference", {})
  wl = inf.get("len%d_b32" % seq_length)
  for n, target in sorted(TARGET_SPEEDUP.items(), reverse=True):
    name = "tf_%dL" % n
    if wl and name in wl["models"] and seq_length == 128:
      v = wl["models"][name]["speedup_vs_tf_predecessor"]
      targets.append({"what": "inference speedup %d -> %d, batch 32, length 128" % (num_layers, n),
                      "measured": v, "target": ">= %.1fx" % target, "met": v >= target,
                      "detail": None if v >= target else "short by %.1f%%"
                      % (100.0 * (target - v) / target)})
  for key in results.get("training_target_keys", []):
    v = results["training_ratios"][key]
    if v is not None:
      targets.append({"what": key, "measured": v, "target": "<= %.2f" % TARGET_STAGE1_VS_BOTH,
                      "met": v <= TARGET_STAGE1_VS_BOTH,
                      "detail": None if v <= TARGET_STAGE1_VS_BOTH else "over by %.1f%%"
                      % (100.0 * (v - TARGET_STAGE1_VS_BOTH) / TARGET_STAGE1_VS_BOTH)})
  tr = results.get("training", {})
  tname = "torch_finetune_%dL" % num_layers
  pname = "predecessor_%dL" % num_layers
  if tname in tr and pname in tr:
    v = tr[pname]["tokens_per_s"] / tr[tname]["tokens_per_s"]
    targets.append({"what": "TF predecessor train step vs PyTorch (tokens/s ratio)",
                    "measured": v, "target": ">= %.1f" % TARGET_TRAIN_VS_TORCH,
                    "met": v >= TARGET_TRAIN_VS_TORCH,
                    "detail": training_budget(tr[tname], results.get("profiles", {}).get(
                        "train_" + pname))})
  targets += inference_targets(inf, results.get("auto_backends", {}), num_layers)
  results["targets"] = targets


def training_budget(torch_training, tf_profile):
  """What the training target leaves the TF step's ops other than matrix products, from its
  profile (None without one): the target step is PyTorch's p50 / TARGET_TRAIN_VS_TORCH."""
  if not tf_profile or "matmul_ms" not in tf_profile:
    return None
  step = torch_training["ms_per_step_p50"] / TARGET_TRAIN_VS_TORCH
  return ("a %.0f ms step; the traced step's matrix products take %.0f ms, leaving %.0f ms for "
          "the other ops, which take %.0f" % (step, tf_profile["matmul_ms"],
                                              step - tf_profile["matmul_ms"],
                                              tf_profile["other_ms"]))


def inference_targets(inference, auto_backends, num_layers):
  """TF / PyTorch inference targets per workload: the SavedModel, and with TFLite timed too,
  the backend predict.py's auto runs for that workload on the measuring CPU."""
  targets = []
  tname = "torch_%dL" % num_layers
  for wname, entry in inference.items():
    models = entry["models"]
    if tname not in models:
      continue
    runs = [("TF %dL inference" % num_layers, "tf_%dL" % num_layers)]
    auto = auto_backends.get(wname)
    if auto in ("saved_model", "tflite"):
      runs.append(("TF %dL inference as predict.py runs it (auto: %s)" % (num_layers, auto),
                   ("tf_%dL" if auto == "saved_model" else "tflite_%dL") % num_layers))
    for what, name in runs:
      if name not in models:
        continue
      v = models[name]["sequences_per_s"] / models[tname]["sequences_per_s"]
      targets.append({"what": "%s vs PyTorch, %s (seq/s ratio)" % (what, wname), "measured": v,
                      "target": ">= %.1f" % TARGET_INFERENCE_VS_TORCH,
                      "met": v >= TARGET_INFERENCE_VS_TORCH})
  return targets



if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python benchmarks/speed_report.py SPEED_JSON")
  with open(sys.argv[1]) as f:
    report(json.load(f), sys.argv[1])
