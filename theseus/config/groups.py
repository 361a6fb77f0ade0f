"""The settings every application shares, grouped by concern (google-research/bert's flag names
where they overlap), and `RunSettings`, the groups of one run.

Required: --data_dir (DataSettings), --bert_config_file and --vocab_file (ModelSettings),
--output_dir (ActionSettings); a task adds its own group (e.g. --task_name). A library function
takes the group(s) it uses; only the application's runner holds a whole RunSettings.

Imports no TensorFlow.
"""

import dataclasses
import os
from typing import Optional, Tuple

from theseus.config import declare
from theseus.config.declare import setting
from theseus.stage import SUC_INIT_RULES
from theseus.stage import Stage

STAGE1_EXTRA_GROUPS = ("embeddings", "pooler", "head")
SCHEDULES = ("constant", "linear_growth", "linear_decay")


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """The model: its config, vocabulary, casing, initial checkpoint and input length."""
  bert_config_file: Optional[str] = setting(None, "bert_config.json of the predecessor (L "
                                            "layers).")
  vocab_file: Optional[str] = setting(None, "WordPiece vocab.txt the model was trained with.")
  spm_model_file: Optional[str] = setting(None, "SentencePiece .model (instead of vocab_file).")
  do_lower_case: bool = setting(True, "Lower-case the input (uncased models).")
  init_checkpoint: Optional[str] = setting(
      None, "Initial checkpoint: a pretrained BERT (plain fine-tuning), a fine-tuned predecessor "
      "(stage 1), a stage-1 checkpoint (stage 2) or an exported model.")
  max_seq_length: int = setting(128, "Maximum total input length in word pieces.", minimum=8)

  @property
  def vocab_path(self):
    """The vocabulary file: --spm_model_file, else --vocab_file."""
    return self.spm_model_file or self.vocab_file


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """Where the task's data is, how much of it, and the feature caches."""
  data_dir: Optional[str] = setting(None, "Directory with the task's data files.")
  cache_dir: Optional[str] = setting(None, "Feature cache directory (default: "
                                     "<output_dir>/cache).")
  max_train_examples: int = setting(0, "If > 0, train on the first N examples only.",
                                    minimum=0)
  max_eval_examples: int = setting(0, "If > 0, evaluate on the first N examples only.",
                                   minimum=0)
  skip_bad_rows: bool = setting(False, "Skip (and count) malformed data rows instead of "
                                "failing.")


@dataclasses.dataclass(frozen=True)
class ActionSettings:
  """What the run does and where it writes."""
  output_dir: Optional[str] = setting(None, "Where checkpoints, summaries and results are "
                                      "written.")
  do_train: bool = setting(False, "Train.")
  do_eval: bool = setting(False, "Evaluate on the dev set (the successor-only graph).")
  do_predict: bool = setting(False, "Predict on the test set (the successor-only graph).")
  do_export: bool = setting(False, "Export the successor as a plain n-layer BERT + SavedModel.")
  eval_batch_size: int = setting(64, "Batch size for evaluation.", minimum=1)
  predict_batch_size: int = setting(64, "Batch size for prediction.", minimum=1)
  tf_verbose: bool = setting(False, "Show TensorFlow's own start-up messages and deprecation "
                             "warnings (give it on the command line: it takes effect before "
                             "TensorFlow is imported).")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
  """The optimisation and the training loop."""
  train_batch_size: int = setting(32, "The global batch of one micro-batch step (every replica "
                                  "takes its share).", minimum=1)
  learning_rate: float = setting(5e-5, "Peak learning rate of Adam.", above=0)
  num_train_epochs: float = setting(3.0, "Number of training epochs.", above=0)
  num_train_steps: int = setting(0, "If > 0, the number of optimizer updates (overrides "
                                 "num_train_epochs).", minimum=0)
  warmup_proportion: float = setting(0.1, "Fraction of the updates spent warming up.",
                                     minimum=0, maximum=1)
  weight_decay_rate: float = setting(0.01, "Decoupled weight decay.", minimum=0)
  clip_norm: float = setting(1.0, "Global-norm gradient clip (0 disables).", minimum=0)
  gradient_accumulation_steps: int = setting(1, "Micro-batches per optimizer update.",
                                             minimum=1)
  save_checkpoints_steps: int = setting(1000, "Save a checkpoint every N updates.", minimum=1)
  keep_checkpoint_max: int = setting(3, "How many recent checkpoints to keep.", minimum=1)
  log_every_n_steps: int = setting(50, "Log progress every N updates.", minimum=1)
  seed: int = setting(12345, "Random seed (data order, dropout, replacement draws).", minimum=0)
  evaluate_during_training: bool = setting(
      False, "Evaluate at every checkpoint and keep the best one (by the task's main metric) in "
      "<output_dir>/best; eval / predict / export then use it.")


@dataclasses.dataclass(frozen=True)
class ReplacingSettings:
  """Module replacing: the successor, the stage, the replace-rate schedule."""
  suc_layers: int = setting(0, "Successor modules n (0 = plain fine-tuning of all layers).",
                            minimum=0)
  finetune_suc: bool = setting(False, "Stage 2: train the successor-only graph.")
  replacing_rate: float = setting(0.5, "Base replace rate p (stage 1).", minimum=0, maximum=1)
  scheduler_type: str = setting("constant", "Replace-rate schedule.",
                                choices=("constant", "linear"))
  scheduler_linear_k: float = setting(0.0, "Linear schedule slope per update.", minimum=0,
                                      maximum=1)
  steps_for_replacing: int = setting(0, "Constant schedule: p = 1 from this update on (0: "
                                     "never).", minimum=0)
  suc_init: str = setting("first", "Predecessor layer that initialises successor j: first = j, "
                          "group_first = j*r, group_last = j*r + r - 1.",
                          choices=sorted(SUC_INIT_RULES))
  stage1_also_train: Tuple[str, ...] = setting(
      (), "Stage 1: also train these groups: " + ", ".join(STAGE1_EXTRA_GROUPS))

  def stage(self):
    """The Stage these settings ask for (ValueError: --finetune_suc without --suc_layers)."""
    return Stage.of(self.suc_layers, self.finetune_suc)


@dataclasses.dataclass(frozen=True)
class DistillationSettings:
  """Knowledge distillation, in any stage (theseus/distillation)."""
  kd_alpha: float = setting(0.0, "Weight of the soft-label loss: (1 - a) * hard + a * soft (0: "
                            "none). Soft labels are the teacher's logits, computed once and "
                            "cached.", minimum=0, maximum=1)
  kd_temperature: float = setting(1.0, "Temperature of the soft labels (the loss is scaled by "
                                  "T^2).", above=0)
  kd_hidden_weight: float = setting(0.0, "Weight of the MSE between student layer j and the "
                                    "teacher's last layer of group j (0: none; runs the teacher "
                                    "every step).", minimum=0)
  kd_embeddings: bool = setting(False, "Hidden matching also matches the embedding outputs.")
  kd_module_weight: float = setting(
      0.0, "Stage 1: weight of the module distillation (each successor module that drew matched "
      "to its predecessor group on the same input; theseus/distillation/intermediate.py).",
      minimum=0)
  kd_module_loss: str = setting("nmse", "The module distillation's hidden-state loss.",
                                choices=("mse", "nmse", "cosine", "pkd"))
  kd_module_attention_weight: float = setting(
      0.0, "Module distillation: weight of MiniLM's attention and value-relation KL of the "
      "group's last layer.", minimum=0)
  kd_matches: Tuple[str, ...] = setting(
      (), "Intermediate matches with the frozen teacher, each teacher_layer:student_layer:"
      "feature:loss:weight (feature hidden / attention / value_relation; layers from 0 or "
      "`embeddings`).")
  kd_temperature_schedule: str = setting("constant", "The temperature over training: constant, "
                                         "linear_growth (1 -> T) or linear_decay (T -> 1).",
                                         choices=SCHEDULES)
  kd_weight_schedule: str = setting("constant", "Every distillation weight over training: "
                                    "constant, linear_growth (0 -> w) or linear_decay (w -> 0).",
                                    choices=SCHEDULES)
  kd_augment: int = setting(0, "Augmented copies of each training example, labelled by the "
                            "teacher (TextBrewer's masking, deleting, n-gram sampling, "
                            "reordering; classification tasks).", minimum=0)
  teacher_checkpoint: Tuple[str, ...] = setting(
      (), "The teacher(s) (default: --init_checkpoint); with several, their soft labels are "
      "averaged and the first one runs for hidden matching.")
  teacher_bert_config_file: Optional[str] = setting(
      None, "The teachers' bert_config.json (default: --bert_config_file).")

  @property
  def soft_labels(self):
    return self.kd_alpha > 0

  @property
  def hidden_matching(self):
    return self.kd_hidden_weight > 0

  @property
  def runs_teacher(self):
    """Whether the frozen teacher runs in every step (hidden matching, matches)."""
    return self.hidden_matching or bool(self.kd_matches)

  @property
  def any(self):
    return (self.soft_labels or self.runs_teacher or self.kd_module_weight > 0 or
            self.kd_augment > 0)


@dataclasses.dataclass(frozen=True)
class ScaleSettings:
  """Devices, machines, precision and threads (theseus/training/distribute.py, update.py)."""
  distribute: str = setting("none", "none: one process, one device; mirrored: the devices of "
                            "--mirrored_devices in one process; multi_worker: one worker of the "
                            "TF_CONFIG cluster (see launch_workers.py). --train_batch_size is "
                            "the global batch.", choices=("none", "mirrored", "multi_worker"))
  mirrored_devices: Tuple[str, ...] = setting((), "--distribute=mirrored: the devices, e.g. "
                                              "/gpu:0,/gpu:1 (default: every GPU, else the "
                                              "CPU).")
  precision: str = setting("fp32", "Training compute precision of the encoder: fp32 weights "
                           "always; bf16 / fp16 compute (fp16 with dynamic loss scaling). "
                           "Exports are fp32.", choices=("fp32", "bf16", "fp16"))
  fp16_initial_loss_scale: float = setting(2.0 ** 15, "--precision=fp16: the first loss scale.",
                                           above=0)
  fp16_loss_scale_window: int = setting(2000, "--precision=fp16: double the loss scale after "
                                        "this many updates without an overflow.", minimum=1)
  xla: bool = setting(False, "XLA clustering of the training and inference graphs (give it on "
                      "the command line: on a CPU it takes effect before TensorFlow is "
                      "imported).")
  num_threads: int = setting(0, "TensorFlow intra/inter-op threads (0: TensorFlow's choice).",
                             minimum=0)
  cluster_timeout_s: int = setting(600, "--distribute=multi_worker: how long a worker waits for "
                                   "the others to come up before it stops with one line.",
                                   minimum=1)
  step_timeout_s: int = setting(3600, "--distribute=multi_worker: how long a worker waits in one "
                                "step for the others (the chief evaluates between steps) before "
                                "it stops with one line naming the worker that is gone.",
                                minimum=1)


@dataclasses.dataclass(frozen=True)
class ExportSettings:
  """What --do_export writes."""
  export_dir: Optional[str] = setting(None, "Export directory (default: <output_dir>/export).")
  export_tflite: bool = setting(False, "--do_export: also write model.tflite (float32) and "
                                "model_int8.tflite (dynamic-range int8) with the SavedModel's "
                                "signature.")


@dataclasses.dataclass(frozen=True)
class TpuSettings:
  """google-research/bert's TPU flags: accepted so its command lines run unchanged;
  --use_tpu=True is refused, the others are unused."""
  use_tpu: bool = setting(False, "google-research/bert's flag; only False is supported (this "
                          "project trains on CPUs and GPUs).")
  tpu_name: Optional[str] = setting(None, "google-research/bert's flag (unused).")
  tpu_zone: Optional[str] = setting(None, "google-research/bert's flag (unused).")
  gcp_project: Optional[str] = setting(None, "google-research/bert's flag (unused).")
  master: Optional[str] = setting(None, "google-research/bert's flag (unused).")
  num_tpu_cores: int = setting(8, "google-research/bert's flag (unused).", minimum=1)
  iterations_per_loop: int = setting(1000, "google-research/bert's flag (unused).", minimum=1)


COMMON_GROUPS = (("model", ModelSettings), ("data", DataSettings), ("actions", ActionSettings),
                 ("training", TrainingSettings), ("replacing", ReplacingSettings),
                 ("distillation", DistillationSettings), ("scale", ScaleSettings),
                 ("export", ExportSettings), ("tpu", TpuSettings))


def define_flags(task_settings):
  """Defines the shared flags and those of the task's settings group."""
  declare.define_flags([group for _, group in COMMON_GROUPS] + [task_settings])


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The groups of one run, built once from the flags (or from values, in tests)."""
  model: ModelSettings
  data: DataSettings
  actions: ActionSettings
  training: TrainingSettings
  replacing: ReplacingSettings
  distillation: DistillationSettings
  scale: ScaleSettings
  export: ExportSettings
  tpu: TpuSettings
  task: object  # the task's own settings group

  @classmethod
  def from_flags(cls, flag_values, task_settings):
    """Every group from its own flags; the task's group is `task_settings`."""
    groups = {name: declare.from_flags(group, flag_values) for name, group in COMMON_GROUPS}
    return cls(task=declare.from_flags(task_settings, flag_values), **groups)._with_defaults()

  @classmethod
  def from_values(cls, task_settings, **values):
    """Defaults, with `values` given by flag name (each goes to the group that declares it)."""
    known = set(declare.field_names(task_settings))
    for _, group in COMMON_GROUPS:
      known.update(declare.field_names(group))
    unknown = set(values) - known
    if unknown:
      raise ValueError("unknown settings: %s" % ", ".join(sorted(unknown)))
    groups = {name: declare.from_values(group, values) for name, group in COMMON_GROUPS}
    return cls(task=declare.from_values(task_settings, values), **groups)._with_defaults()

  def replace(self, **values):
    """A copy with `values` (by flag name) changed in the groups that declare them."""
    known = set(declare.field_names(type(self.task)))
    for _, group in COMMON_GROUPS:
      known.update(declare.field_names(group))
    if set(values) - known:
      raise ValueError("unknown settings: %s" % ", ".join(sorted(set(values) - known)))
    changed = {}
    for name in [n for n, _ in COMMON_GROUPS] + ["task"]:
      group = getattr(self, name)
      mine = {k: v for k, v in values.items() if k in declare.field_names(type(group))}
      changed[name] = dataclasses.replace(group, **mine) if mine else group
    return RunSettings(**changed)

  def _with_defaults(self):
    """Fills --cache_dir and --export_dir, which default to places under --output_dir."""
    out = self.actions.output_dir
    data, export = self.data, self.export
    if out and not data.cache_dir:
      data = dataclasses.replace(data, cache_dir=os.path.join(out, "cache"))
    if out and not export.export_dir:
      export = dataclasses.replace(export, export_dir=os.path.join(out, "export"))
    return dataclasses.replace(self, data=data, export=export)
