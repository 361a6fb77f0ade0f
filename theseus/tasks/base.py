"""The one task interface: what a task tells the shared code, and the model a run builds for it.

A task is a folder under theseus/tasks/ (its data reading, features, head, metrics, decoding and
serving) plus one line in theseus/tasks/__init__.py's registry. The shared code knows it only
through three things:

* `TaskSpec`: features, head, decoding, metric, serving outputs and soft labels. The training
  loop, evaluation, distillation and export read nothing else of a task.
* `TaskRun`: the task's part of a run (its settings, reading and validating its data, the feature
  caches, the files it writes); theseus/app/runner.py calls its methods in a fixed order.
* `ServingTask`: raw text -> features, model outputs -> results, from an export's own files;
  theseus/export/serving.py's Predictor calls it.
"""

import collections

import tensorflow as tf

import modeling_theseus as modeling
from theseus.errors import InputDataError

FeatureSet = collections.namedtuple("FeatureSet", ["name", "task", "path", "data"])
FeatureSet.__doc__ = """A data set ready for the graph.

  name: "train", "dev", "dev_matched", "test", ...
  task: the TaskSpec that decodes and scores this set.
  path: its TFRecord feature cache.
  data: what the task needs besides (examples, sentences and metas, ...).
"""


class TaskSpec(object):
  """What a task tells the shared code.

  Attributes:
    int_keys / float_keys: feature names in the caches (all variable-length 1-D lists).
    index_key: the int feature that numbers examples (eval outputs are returned in its order).
    sequence_output_keys: outputs with a time axis; rows are trimmed to the example's length.
    head_variable_regex: non-`bert/` variables that belong to the model (exported with it,
      trained in stage 1 with --stage1_also_train=head).
    build_head: callable(model: BertModel, features: dict, is_training) -> (loss or None,
      outputs: dict name -> Tensor [batch, ...]); features may hold only input_ids, input_mask
      and segment_ids (export, serving): the loss is then None.
    decode: callable(rows: list of output dicts, in index order) -> the set's predictions.
    score: callable(predictions) -> dict of metrics, with "main_metric" naming the one that
      picks the best checkpoint (higher is better).
    serving_outputs: callable(outputs) -> dict of the SavedModel's outputs.
    teacher_outputs: dict head output -> name of the float feature that caches the teacher's
      value of it (distillation's soft labels); empty when the task has none.
    soft_loss: callable(outputs, features, temperature) -> the soft-label loss of the head's
      outputs against the cached teacher features, or None.
    teacher_label: callable(teacher output row) -> {label feature: values}: the label an
      augmented training copy (feature "augmented" = 1) gets from the teacher; None when the
      task has no augmentation.
    reads_first_token_only: the head reads the pooled output alone, so the model's last layer
      may compute the first token only (BertModel's first_token_only).
  """

  def __init__(self, int_keys, float_keys, index_key, build_head, decode, score,
               serving_outputs, head_variable_regex, sequence_output_keys=(),
               teacher_outputs=None, soft_loss=None, teacher_label=None,
               reads_first_token_only=False):
    self.int_keys = list(int_keys)
    self.float_keys = list(float_keys)
    self.index_key = index_key
    self.build_head = build_head
    self.decode = decode
    self.score = score
    self.serving_outputs = serving_outputs
    self.head_variable_regex = head_variable_regex
    self.sequence_output_keys = tuple(sequence_output_keys)
    self.teacher_outputs = dict(teacher_outputs or {})
    self.soft_loss = soft_loss
    self.teacher_label = teacher_label
    self.reads_first_token_only = reads_first_token_only

  def evaluate(self, rows):
    """The metrics of a set's evaluated rows."""
    return self.score(self.decode(rows))


def build_model(bert_config, task, features, is_training, stage, replace_rate=None,
                encoder_fn=None, replace_draw_seed=None, compute_dtype=tf.float32,
                expose_attention=False, module_teacher=None, all_tokens=False):
  """The BertModel of a stage with the task head on top.

  When the head reads the pooled output alone (task.reads_first_token_only), the last layer
  computes the first token only, unless all_tokens, expose_attention or module_teacher ask for
  every token of every layer (distillation of hidden states and attention).

  Args:
    bert_config: the predecessor's BertConfig (or a plain model's).
    task: TaskSpec.
    features: dict with int32 "input_ids", "input_mask", "segment_ids" [batch, length] (and the
      labels the head's loss reads, when training or evaluating).
    is_training: dropout on, and in stage 1 the Theseus graph.
    stage: the Stage (theseus/stage.py) whose graph to build.
    replace_rate, encoder_fn, replace_draw_seed, compute_dtype, expose_attention,
      module_teacher: as for modeling_theseus.BertModel.
    all_tokens: the last layer computes every token whatever the head reads.

  Returns:
    (model, loss or None, outputs dict).
  """
  model = modeling.BertModel(
      bert_config, is_training, features["input_ids"], features["input_mask"],
      features["segment_ids"], suc_layers=stage.suc_layers, replace_rate_prob=replace_rate,
      finetune_suc=stage.finetune_suc, encoder_fn=encoder_fn,
      replace_draw_seed=replace_draw_seed, compute_dtype=compute_dtype,
      expose_attention=expose_attention, module_teacher=module_teacher,
      first_token_only=(task.reads_first_token_only and not all_tokens and not expose_attention
                        and module_teacher is None))
  loss, outputs = task.build_head(model, features, is_training)
  return model, loss, outputs


class TaskRun(object):
  """A task's part of a run. Subclasses set KIND and SETTINGS and implement every method.

  The runner calls, in this order: check_settings(); read_data(tokenizer, sets) before any long
  work; train_inputs(with_dev) to train; eval_sets() and eval_outputs(...) to evaluate;
  predict_set() and write_predictions(...) to predict; export_spec() and export_files() to
  export.
  """

  KIND = None  # the task's name in the registry, written to export_info.json
  SETTINGS = None  # the dataclass of the task's own settings (theseus/config/declare.py)
  NEEDS_DATA_DIR = True  # its data files live in --data_dir (SQuAD names its files instead)
  FLAG_DEFAULTS = {}  # the defaults its command line gives shared flags (run_squad.py: 384)

  def __init__(self, settings, model, data, output_dir):
    """settings: the task's SETTINGS group; model, data: ModelSettings, DataSettings."""
    self.settings, self.model, self.data, self.output_dir = settings, model, data, output_dir

  def check_settings(self):
    """Validates the task's settings (InputDataError) and fills their defaults."""
    raise NotImplementedError()

  def read_data(self, tokenizer, sets):
    """Reads and validates the data files of `sets` (a subset of train, dev, test)."""
    raise NotImplementedError()

  def train_inputs(self, with_dev, augment_copies=0, seed=0):
    """(TaskSpec, train feature cache, its number of features, dev cache or None).

    augment_copies: augmented copies of each training example (--kd_augment), drawn with
    `seed`; a task without augmentation refuses them (InputDataError).
    """
    raise NotImplementedError()

  def eval_sets(self):
    """The FeatureSets --do_eval evaluates (the first one writes eval_results.txt)."""
    raise NotImplementedError()

  def eval_outputs(self, feature_set, predictions):
    """Writes what the task writes besides the metrics of an evaluated set (e.g. predicted
    tags); returns extra entries for its results."""
    raise NotImplementedError()

  def predict_set(self):
    """The FeatureSet of --do_predict."""
    raise NotImplementedError()

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """Writes the prediction files of the --do_predict rows; returns the results."""
    raise NotImplementedError()

  def export_spec(self):
    """The TaskSpec of the export (head and serving outputs)."""
    raise NotImplementedError()

  def export_files(self):
    """dict file name -> text: what an export needs besides the model to serve the task."""
    raise NotImplementedError()


class ServingTask(object):
  """Raw text in, results out, for one task, from an export directory's own files.

  Subclasses set TASK_FILE (the file export_files writes that describes the task) and the keys
  it must hold (REQUIRED_KEYS), and implement `features` and `results`.
  """

  TASK_FILE = None
  REQUIRED_KEYS = ()

  def __init__(self, export_dir, task_info, tokenizer):
    """task_info: the export's TASK_FILE, read; tokenizer: the export's own."""
    self.export_dir, self.task_info, self.tokenizer = export_dir, task_info, tokenizer

  def features(self, texts, locations=None):
    """(feature dicts with input_ids and segment_ids, state for `results`) of raw texts.

    locations: optional place of each text for errors (example_error). Raises InputDataError.
    """
    raise NotImplementedError()

  def results(self, texts, state, outputs):
    """One result dict per text from the model's outputs on the padded features."""
    raise NotImplementedError()


def example_error(what, index, locations=None):
  """The InputDataError of raw example `index`: `example 3<what>`, or `<file>:<line>: <what>`
  when locations[index] is its (file, line), or `<name><what>` when it is a name."""
  location = locations[index] if locations else None
  if isinstance(location, tuple):
    return InputDataError(what.lstrip(":").strip(), location[0], location[1])
  return InputDataError("%s%s" % (location or "example %d" % (index + 1), what))
