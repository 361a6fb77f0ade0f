# coding=utf-8
"""Serving an export: raw text in, the task's results (labels with probabilities, entities) out.

`Predictor(export_dir)` reads the export's export_info.json, finds its task in the registry
(theseus/tasks/registry.py), builds the export's own tokenizer (its vocab, its do_lower_case), loads one model
file, and `predict(texts)` turns raw text into the results predict.py prints: the task's
ServingTask makes the features and reads the outputs. The model file is the SavedModel or one of
the TFLite files (--export_tflite); all have the same inputs (input_ids, input_mask,
segment_ids [batch, length], any length) and outputs, so the rest does not depend on which runs.
"""

import os
import warnings

from google.protobuf import message as protobuf_message
import numpy as np
import tensorflow as tf

from theseus import cli
from theseus import files
from theseus.errors import InputDataError
from theseus.export import integrity
from theseus.export import layout
from theseus.tasks import registry
import tokenization

tf1 = tf.compat.v1

BACKENDS = layout.BACKENDS
BACKEND_FILES = layout.BACKEND_FILES
# `auto` runs the fastest exact backend measured for the call on the kind of CPU it runs on
# (BENCHMARKS.md, "Serving"). On an AVX-512 CPU: the float32 TFLite file for one short example
# (batch 1, up to this many word pieces; 4.9 ms against 5.8 for the SavedModel, 3-layer
# successor, SST-2 dev), the SavedModel for batches and long examples (380 sentences/s at batch
# 32 against 170), where oneDNN's AVX-512 kernels lead. On other CPUs the TFLite file for every
# call: on a 2-core AVX2 CPU, both cores, it took 0.36-0.63 of the SavedModel's time at batch 1
# and 0.91-0.96 at batch 32 (benchmarks/speed.py --with_tflite, length 128 and SST-2 dev).
AUTO_TFLITE_MAX_LENGTH = 64


def cpu_has_avx512(cpuinfo_path="/proc/cpuinfo"):
  """Whether the CPU lists AVX-512 (avx512f) among its flags; False where no cpuinfo is found."""
  try:
    with open(cpuinfo_path) as f:
      for line in f:
        if line.startswith("flags"):
          return "avx512f" in line.split()
  except OSError:
    pass
  return False


def auto_backend(batch_size, length, available, avx512):
  """The backend `auto` runs for a padded batch [batch_size, length].

  Args:
    batch_size, length: the batch's shape.
    available: the backends among saved_model and tflite that the export has.
    avx512: whether the CPU has AVX-512 (cpu_has_avx512()).
  """
  if "tflite" not in available:
    return "saved_model"
  if "saved_model" not in available:
    return "tflite"
  if not avx512:
    return "tflite"
  return "tflite" if batch_size == 1 and length <= AUTO_TFLITE_MAX_LENGTH else "saved_model"


def load_saved_model_predictor(saved_model_dir, session_config=None):
  """Returns (session, predict_fn(feed_dict name -> array) -> dict) for an exported SavedModel."""
  graph = tf.Graph()
  sess = tf1.Session(graph=graph, config=session_config)
  with graph.as_default():
    meta = tf1.saved_model.loader.load(sess, [tf1.saved_model.tag_constants.SERVING],
                                       saved_model_dir)
  signature = meta.signature_def[layout.SIGNATURE_KEY]
  input_names = {k: v.name for k, v in signature.inputs.items()}
  output_names = {k: v.name for k, v in signature.outputs.items()}

  def predict(inputs):
    feed = {input_names[k]: v for k, v in inputs.items()}
    return sess.run(output_names, feed)

  return sess, predict


class SavedModelRunner(object):
  """The export's SavedModel in a session: inputs dict -> outputs dict of arrays."""

  def __init__(self, saved_model_dir, num_threads=0):
    config = tf1.ConfigProto()
    if num_threads:
      config.intra_op_parallelism_threads = config.inter_op_parallelism_threads = num_threads
    self.sess, self._predict = load_saved_model_predictor(saved_model_dir, config)

  def __call__(self, inputs):
    return self._predict(inputs)

  def close(self):
    self.sess.close()


class TFLiteRunner(object):
  """A TFLite file's serving_default signature: inputs dict -> outputs dict of arrays.

  num_threads 0 means every usable core, as TensorFlow's sessions take them (the interpreter's
  own default is one thread).
  """

  def __init__(self, path, num_threads=0):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about LiteRT
      self.interpreter = tf.lite.Interpreter(model_path=path,
                                             num_threads=num_threads or cli.usable_cores())
    self._run = self.interpreter.get_signature_runner(layout.SIGNATURE_KEY)

  def __call__(self, inputs):
    return self._run(**inputs)

  def close(self):
    pass


def make_runner(export_dir, backend, num_threads=0, info=None):
  """The runner of one backend (not auto) of an export, its model file checked first.

  Raises:
    InputDataError: the export has no such model file, or it is damaged.
  """
  if backend not in BACKEND_FILES:
    raise InputDataError("unknown backend %r (choose from %s)" % (backend, ", ".join(BACKENDS)))
  path = os.path.join(export_dir, BACKEND_FILES[backend])
  if not os.path.exists(path):
    raise InputDataError("the export has no %s (export with --export_tflite, or run "
                         "convert_checkpoint.py --mode=tflite --export_dir=...)"
                         % BACKEND_FILES[backend], export_dir)
  integrity.check_model_file(export_dir, BACKEND_FILES[backend],
                             integrity.export_info(export_dir) if info is None else info)
  try:
    if backend == "saved_model":
      return SavedModelRunner(path, num_threads)
    return TFLiteRunner(path, num_threads)
  except (tf.errors.OpError, protobuf_message.DecodeError, ValueError, RuntimeError,
          OSError) as e:
    raise InputDataError("cannot be loaded (%s)" % " ".join(str(e).split())[:300], path)


def pad_batch(features):
  """Model inputs of feature dicts, padded to the longest: input_ids / input_mask / segment_ids."""
  length = max(len(f["input_ids"]) for f in features)
  batch = {name: np.zeros((len(features), length), np.int32) for name in layout.INPUT_NAMES}
  for i, feature in enumerate(features):
    n = len(feature["input_ids"])
    batch["input_ids"][i, :n] = feature["input_ids"]
    batch["input_mask"][i, :n] = 1
    batch["segment_ids"][i, :n] = feature["segment_ids"]
  return batch


def _export_tokenizer(export_dir, do_lower_case):
  """The tokenizer of the vocab file the export carries (vocab.txt or a SentencePiece .model)."""
  models = [n for n in os.listdir(export_dir) if n.endswith(".model")]
  if models:
    return tokenization.SentencePieceTokenizer(os.path.join(export_dir, models[0]), do_lower_case)
  return tokenization.FullTokenizer(os.path.join(export_dir, "vocab.txt"), do_lower_case)


def export_task(export_dir, info):
  """(the task.py module of the export's task, its task file read and checked).

  The task is export_info.json's "task" (`info`); an export written before that field existed
  is known by its task file.
  """
  kind = info.get("task")
  if kind is None:
    for candidate in registry.TASKS:
      module = registry.task_module(candidate)
      if os.path.exists(os.path.join(export_dir, module.SERVING.TASK_FILE)):
        kind = candidate
  if kind is None:
    raise InputDataError("not an export (no export_info.json or task file of %s)"
                         % ", ".join(sorted(registry.TASKS)), export_dir)
  if kind not in registry.TASKS:
    raise InputDataError("export_info.json names the task %r, which this version does not know "
                         "(%s)" % (kind, ", ".join(sorted(registry.TASKS))), export_dir)
  module = registry.task_module(kind)
  path = os.path.join(export_dir, module.SERVING.TASK_FILE)
  task_info = files.read_json_object(path, "task file")
  missing = [key for key in module.SERVING.REQUIRED_KEYS if key not in task_info]
  if missing:
    raise InputDataError("task file lacks %s" % ", ".join(repr(k) for k in missing), path)
  return module, task_info


class Predictor(object):
  """An export loaded once; predict(texts) for as many batches as needed.

  Args:
    export_dir: the export directory.
    backend: one of BACKENDS ("auto": per call, the fastest exact one the export has).
    num_threads: threads of the runtime (0: every usable core).
    allow_untrained: serve an export some of whose variables did not come from a checkpoint
      (export_info.json's "untrained_variables", e.g. a head never trained).

  Raises:
    InputDataError: not an export of a known task, no such model file, a damaged one, or an
      untrained head (without allow_untrained).
  """

  def __init__(self, export_dir, backend="auto", num_threads=0, allow_untrained=False):
    if not os.path.isdir(export_dir):
      raise InputDataError("export directory not found", export_dir)
    if backend not in BACKENDS:
      raise InputDataError("unknown backend %r (choose from %s)" % (backend, ", ".join(BACKENDS)))
    self.info = integrity.export_info(export_dir)
    untrained = self.info.get("untrained_variables")
    if untrained and not allow_untrained:
      raise InputDataError("%s did not come from a checkpoint when this was exported (left to "
                           "their random initializers): export again from a trained checkpoint, "
                           "or pass --allow_untrained" % ", ".join(untrained), export_dir)
    module, task_info = export_task(export_dir, self.info)
    tokenizer = _export_tokenizer(export_dir, task_info["do_lower_case"])
    self.serving = module.SERVING(export_dir, task_info, tokenizer)
    self.kind, self.task = module.KIND, task_info
    self.export_dir, self.backend, self.num_threads = export_dir, backend, num_threads
    self.runners = {}  # backend -> runner, loaded on first use
    if backend == "auto":  # what auto_backend decides by, read once
      self.available = [b for b in ("saved_model", "tflite")
                        if os.path.exists(os.path.join(export_dir, BACKEND_FILES[b]))]
      self.avx512 = cpu_has_avx512()
    else:
      self._runner(backend)
    self.last_backend = None

  def _runner(self, backend):
    if backend not in self.runners:
      self.runners[backend] = make_runner(self.export_dir, backend, self.num_threads, self.info)
    return self.runners[backend]

  def run(self, batch):
    """Model outputs of a padded batch, from the backend chosen for it (see auto_backend)."""
    backend = self.backend
    if backend == "auto":
      backend = auto_backend(batch["input_ids"].shape[0], batch["input_ids"].shape[1],
                             self.available, self.avx512)
    self.last_backend = backend
    return self._runner(backend)(batch)

  def predict(self, texts, locations=None):
    """A list of raw-text examples -> a list of result dicts (see predict.py).

    locations: optional (file, line) of each text, for error messages.
    """
    features, state = self.serving.features(texts, locations)
    outputs = self.run(pad_batch(features))
    return self.serving.results(texts, state, outputs)

  def close(self):
    for runner in self.runners.values():
      runner.close()
