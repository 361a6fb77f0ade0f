"""The checks a run makes before any long work: flags, the files they name, the model config and
checkpoint, the output directory. Each failure is one InputDataError line.

  check_required(actions, tpu, data, model, needs_data)   something to do, required flags, files
  load_bert_config(model)                                  the BertConfig, validated
  check_model(model, bert_config, stage)                   vocab, lengths, the stage's layers
  check_replacing(replacing)                               stage and stage-1 groups
  check_init_checkpoint(path, bert_config, stage)          the checkpoint fits config and stage
  check_writable_dir(path)                                 output_dir can be written
  make_tokenizer(model)                                    the run's tokenizer
"""

import os

from absl import logging
import tensorflow as tf

import modeling_theseus as modeling
from theseus import names
from theseus.config import declare
from theseus.config.groups import STAGE1_EXTRA_GROUPS
from theseus.errors import InputDataError
import tokenization

tf1 = tf.compat.v1


def check_ranges(*groups):
  """Every numeric setting of `groups` within its declared range (and finite)."""
  for group in groups:
    declare.check_ranges(group)


def check_required(actions, tpu, data, model, needs_data=True):
  """Something to do, the required flags, and the files they name exist."""
  if tpu.use_tpu:
    raise InputDataError("--use_tpu=True is not supported: this project trains on CPUs and GPUs "
                         "(TPUEstimator is gone from current TensorFlow); use --use_tpu=False")
  if not (actions.do_train or actions.do_eval or actions.do_predict or actions.do_export):
    raise InputDataError("nothing to do: set at least one of --do_train, --do_eval, "
                         "--do_predict, --do_export")
  if not model.bert_config_file:
    raise InputDataError("--bert_config_file is required")
  if not actions.output_dir:
    raise InputDataError("--output_dir is required")
  if not model.vocab_path:
    raise InputDataError("--vocab_file (or --spm_model_file) is required")
  if needs_data and (actions.do_train or actions.do_eval or actions.do_predict):
    if not data.data_dir:
      raise InputDataError("--data_dir is required with --do_train / --do_eval / --do_predict")
    if not os.path.isdir(data.data_dir):
      raise InputDataError("data directory not found", data.data_dir)
  for name in ("bert_config_file", "vocab_file", "spm_model_file"):
    path = getattr(model, name)
    if path and not os.path.isfile(path):
      raise InputDataError("file not found (--%s)" % name, path)


def load_bert_config(model):
  """The predecessor's BertConfig from --bert_config_file, validated."""
  try:
    bert_config = modeling.BertConfig.from_json_file(model.bert_config_file)
  except ValueError as e:
    raise InputDataError(str(e))
  try:
    bert_config.validate()
  except ValueError as e:
    raise InputDataError(str(e), model.bert_config_file)
  return bert_config


def check_model(model, bert_config, suc_layers):
  """The vocabulary and input length fit the config, and n successor modules fit its layers."""
  tokenizer = make_tokenizer(model)
  if len(tokenizer.vocab) != bert_config.vocab_size:
    raise InputDataError("vocab has %d entries but bert_config vocab_size is %d"
                         % (len(tokenizer.vocab), bert_config.vocab_size), model.vocab_path)
  check_ranges(model)
  if model.max_seq_length > bert_config.max_position_embeddings:
    raise InputDataError("--max_seq_length %d is above the model's max_position_embeddings %d"
                         % (model.max_seq_length, bert_config.max_position_embeddings))
  try:
    modeling.check_theseus_layers(bert_config.num_hidden_layers, suc_layers)
  except ValueError as e:
    raise InputDataError("--suc_layers: " + str(e))


def check_replacing(replacing):
  """The stage the flags ask for exists, and the stage-1 groups are known. Returns the Stage."""
  if replacing.finetune_suc and replacing.suc_layers == 0:
    raise InputDataError("--finetune_suc needs --suc_layers > 0")
  check_ranges(replacing)
  for group in replacing.stage1_also_train:
    if group not in STAGE1_EXTRA_GROUPS:
      raise InputDataError("--stage1_also_train: unknown group %r (choose from %s)"
                           % (group, ", ".join(STAGE1_EXTRA_GROUPS)))
  return replacing.stage()


def check_init_checkpoint(path, bert_config, stage, do_lower_case):
  """Checks that --init_checkpoint exists and fits the config, the stage and the casing."""
  if not tf.io.gfile.exists(path + ".index"):
    raise InputDataError("checkpoint not found (expected %s.index)" % path, path)
  num_layers, num_suc = modeling.checkpoint_layer_counts(path)
  if stage.finetune_suc and num_suc == 0 and num_layers != stage.suc_layers:
    raise InputDataError("--finetune_suc: checkpoint has no successor (suc_layer_*) variables and "
                         "%d layers, not the %d of an exported successor; run stage 1 first"
                         % (num_layers, stage.suc_layers), path)
  if num_suc and num_suc != stage.suc_layers and stage.suc_layers:
    raise InputDataError("checkpoint has %d successor modules but --suc_layers=%d"
                         % (num_suc, stage.suc_layers), path)
  # Plain fine-tuning and stage 1 build all L predecessor layers: a checkpoint with another
  # number of plain layers would leave some of them untrained-random (stage 1) or not load.
  if not stage.finetune_suc and num_layers and num_layers != bert_config.num_hidden_layers:
    raise InputDataError("checkpoint has %d layers but bert_config num_hidden_layers is %d"
                         % (num_layers, bert_config.num_hidden_layers), path)
  check_checkpoint_shapes(path, bert_config)
  tokenization.validate_case_matches_checkpoint(do_lower_case, path)


def check_checkpoint_shapes(path, bert_config):
  """Every BERT variable of the checkpoint has the shape the config implies."""
  try:
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise InputDataError("cannot read checkpoint (%s)" % str(e).splitlines()[0], path)
  config = bert_config.to_dict()
  for name in sorted(shapes):
    shape = names.expected_shape(name, config)
    if shape is not None and list(shapes[name]) != shape:
      raise InputDataError("%s has shape %s but bert_config implies %s"
                           % (name, list(shapes[name]), shape), path)


def warn_if_random_start(init_checkpoint, do_train, latest_checkpoint):
  if not init_checkpoint and do_train and not latest_checkpoint:
    logging.warning("no --init_checkpoint: training starts from random weights")


def check_writable_dir(path):
  """Creates `path` if needed and checks that a file can be written there."""
  try:
    tf.io.gfile.makedirs(path)
    probe = os.path.join(path, ".write_test.%d" % os.getpid())
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except (OSError, IOError, tf.errors.OpError) as e:
    raise InputDataError("output directory is not writable (%s)" % getattr(e, "strerror", e), path)


def make_tokenizer(model):
  """The run's tokenizer (WordPiece, or SentencePiece with --spm_model_file)."""
  try:
    return tokenization.create_tokenizer(model.vocab_file, model.do_lower_case,
                                         model.spm_model_file)
  except (ValueError, IOError, OSError) as e:
    if isinstance(e, InputDataError):
      raise
    raise InputDataError(str(e), model.vocab_path)
