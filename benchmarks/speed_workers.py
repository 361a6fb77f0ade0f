"""The worker processes of benchmarks/speed.py: one timed configuration per process.

Each configuration (a SavedModel at inference, one training update of the trainer, or PyTorch +
transformers) runs in its own spawned process, with its own TensorFlow runtime, thread pools and
peak RSS. The main process drives them through `Worker` handles: "run" times a list of calls on
a workload, "profile" traces one call, "stats" reports memory and threads.

A worker's spec (a dict) names its runner ("tf_infer", "tf_train", "torch") and what it needs:
  tf_infer: saved_model, threads, workloads {name: [(ids, mask, segments), ...]};
  tf_train: bert_config_file, threads, batch, variant (predecessor | stage1 | stage2 |
            both_branches), suc_layers, replace_rate, precision (fp32 | bf16), kd (a KD_CONFIGS key);
  torch:    hf_dir, threads, mode (infer | train), workloads, precision.
"""

import collections
import multiprocessing
import os
import resource
import sys
import time
import traceback

import numpy as np

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
  """Runs one traced step; writes a Chrome timeline; returns the top op types by time.

  The step runs its ops one at a time on the calling thread (each op still uses the intra-op
  threads): ops that run side by side share the cores, and each one's time in the trace then
  counts the other's work too, so a concurrent trace overstates small ops. Serial, the op times
  add up to the step.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.client import timeline  # pylint: disable=g-import-not-at-top
  options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE,
                                    inter_op_thread_pool=-1)  # -1: the caller's thread
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
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(timeline.Timeline(metadata.step_stats).generate_chrome_trace_format())
  return _profile_summary(path, wall, by_type, count, lambda op: "MatMul" in op)


# PyTorch's matrix-product ops (self time: the composites that call them, such as aten::linear
# and aten::matmul, count only their own overhead).
_TORCH_MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
                  "aten::_addmm_activation")


def _profile_summary(path, wall_s, us_by_type, count, is_matmul):
  """The JSON of one traced step: its op time, the matrix products' share and the top op types.

  us_by_type: op type -> microseconds; count: op type -> number of ops; is_matmul(op type).
  """
  total = sum(us_by_type.values()) or 1
  matmul_us = sum(us for op, us in us_by_type.items() if is_matmul(op))
  top = [{"op": op, "ms": us / 1000.0, "share": us / total, "count": count[op]}
         for op, us in us_by_type.most_common(12)]
  return {"timeline": path, "traced_step_ms": wall_s * 1000.0, "op_time_ms_sum": total / 1000.0,
          "matmul_ms": matmul_us / 1000.0, "other_ms": (total - matmul_us) / 1000.0,
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
                          module_teacher=None, extras=None, first_token_only=False):
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

  def layer(x, params, first_token=False):
    return modeling.transformer_layer(x, attention_bias, params, batch_size, seq_length, config,
                                      hidden_dropout_prob, attention_probs_dropout_prob,
                                      first_token_only=first_token)

  outputs = []
  prev = input_tensor
  for j in range(suc_layers):
    last = first_token_only and j == suc_layers - 1  # as the Theseus graph's last module
    gate = tf.cast(replaced[j], prev.dtype)
    successor = layer(prev, suc_params[j], last)
    predecessor = prev
    group = pred_params[j * group_size:(j + 1) * group_size]
    for i, params in enumerate(group):
      predecessor = layer(predecessor, params, last and i == len(group) - 1)
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
    """One profiled call (torch.profiler, CPU ops): a Chrome trace and the top ops by self time."""
    from torch import profiler  # pylint: disable=g-import-not-at-top
    start = time.perf_counter()
    with profiler.profile(activities=[profiler.ProfilerActivity.CPU]) as prof:
      self.run(workload, [0])
    wall = time.perf_counter() - start
    os.makedirs(os.path.dirname(path), exist_ok=True)
    prof.export_chrome_trace(path)
    us_by_type, count = collections.Counter(), collections.Counter()
    for event in prof.key_averages():
      us_by_type[event.key] += event.self_cpu_time_total
      count[event.key] += event.count
    return _profile_summary(path, wall, us_by_type, count, lambda op: op in _TORCH_MATMULS)

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


class TFLiteInferenceRunner(object):
  """An export's float32 TFLite file, run as predict.py runs it (serving.TFLiteRunner; threads
  0: every usable core)."""

  def __init__(self, spec):
    from theseus import cli  # pylint: disable=g-import-not-at-top
    from theseus.export import serving  # pylint: disable=g-import-not-at-top
    self.spec = spec
    self.threads = spec["threads"] or cli.usable_cores()
    self.runner = serving.TFLiteRunner(spec["tflite"], self.threads)
    self.workloads = spec["workloads"]
    self.rss_after_load = _process_stats()["rss_mb"]

  def run(self, workload, indices):
    times = []
    for i in indices:
      ids, mask, segments = self.workloads[workload][i]
      inputs = {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
      start = time.perf_counter()
      self.runner(inputs)
      times.append(time.perf_counter() - start)
    return {"times": times}

  def profile(self, workload, path):
    del workload, path
    return None  # no session to trace

  def info(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return {"framework": "tensorflow %s (TFLite)" % tf.__version__, "device": "CPU",
            "intra_op_threads": self.threads, "inter_op_threads": 1,
            "rss_after_load_mb": self.rss_after_load}

  def accelerator_peak_mb(self):
    return None

  def close(self):
    self.runner.close()


RUNNERS = {"tf_infer": TFInferenceRunner, "tflite_infer": TFLiteInferenceRunner,
           "tf_train": TFTrainRunner, "torch": TorchRunner}


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
# Main side: the handles.

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


def collect_stats(workers):
  stats = {}
  for name, worker in workers.items():
    s = worker.call("stats")
    s.update({k: v for k, v in worker.info.items()})
    stats[name] = s
  return stats
