"""What a task tells the shared code, and the model a run builds for it.

A task library (classifier_task.py, ner_mrc_task.py) describes its features, head and metric as
a `TaskSpec`; `build_model` puts the head on the BertModel of a run's stage. The training loop,
evaluation and export know tasks only through this.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections

import tensorflow as tf

import modeling_theseus as modeling

FeatureSet = collections.namedtuple("FeatureSet", ["name", "task", "path", "data"])
FeatureSet.__doc__ = """A data set ready for the graph.

  name: "train", "dev", "dev_matched", "test", ...
  task: the TaskSpec whose evaluate scores this set.
  path: its TFRecord feature cache.
  data: what the task library needs besides (examples, sentences and metas, ...).
"""


class TaskSpec(object):
  """What a task library tells the shared loop about its task.

  Attributes:
    int_keys / float_keys: feature names in the caches (all variable-length 1-D lists).
    index_key: the int feature that numbers examples (eval outputs are returned in its order).
    sequence_output_keys: outputs with a time axis; rows are trimmed to the example's length.
    head_variable_regex: non-`bert/` variables that belong to the model (exported with it).
    build_head: callable(model: BertModel, features: dict, is_training) -> (loss or None,
      outputs: dict name -> Tensor [batch, ...]); features may hold only input_ids, input_mask
      and segment_ids (export, serving): the loss is then None.
    serving_outputs: callable(outputs) -> dict of the SavedModel's outputs.
    evaluate: callable(outputs_by_index: list of dicts) -> dict of metrics with "main_metric".
    soft_label_kind: how distillation.py turns the head's logits into soft labels: "softmax"
      (outputs "logits" [B, C]), "regression" ("logits" [B, 1]) or "pointers" ("start_logits",
      "end_logits" [B, T], masked by the "context_mask" feature).
  """

  def __init__(self, int_keys, float_keys, index_key, build_head, evaluate, serving_outputs,
               head_variable_regex, sequence_output_keys=(), soft_label_kind=None):
    self.int_keys = list(int_keys)
    self.float_keys = list(float_keys)
    self.index_key = index_key
    self.build_head = build_head
    self.evaluate = evaluate
    self.serving_outputs = serving_outputs
    self.head_variable_regex = head_variable_regex
    self.sequence_output_keys = tuple(sequence_output_keys)
    self.soft_label_kind = soft_label_kind


def build_model(bert_config, task, features, is_training, suc_layers=0, finetune_suc=False,
                replace_rate=None, encoder_fn=None, replace_draw_seed=None,
                compute_dtype=tf.float32):
  """The BertModel of a stage with the task head on top.

  Args:
    bert_config: the predecessor's BertConfig (or a plain model's).
    task: TaskSpec.
    features: dict with int32 "input_ids", "input_mask", "segment_ids" [batch, length] (and the
      labels the head's loss reads, when training or evaluating).
    is_training: dropout on, and with suc_layers > 0 and not finetune_suc the Theseus graph.
    suc_layers, finetune_suc, replace_rate, encoder_fn, replace_draw_seed, compute_dtype: as
      for modeling_theseus.BertModel.

  Returns:
    (model, loss or None, outputs dict).
  """
  model = modeling.BertModel(
      bert_config, is_training, features["input_ids"], features["input_mask"],
      features["segment_ids"], suc_layers=suc_layers, replace_rate_prob=replace_rate,
      finetune_suc=finetune_suc, encoder_fn=encoder_fn, replace_draw_seed=replace_draw_seed,
      compute_dtype=compute_dtype)
  loss, outputs = task.build_head(model, features, is_training)
  return model, loss, outputs
