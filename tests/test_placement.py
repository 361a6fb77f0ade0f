"""Every op a training step (or an inference graph) pins to a GPU has a GPU kernel: checked
without a GPU.

The training graph of each run mode (plain fine-tuning, stage 1 with accumulation, stage 2; fp32,
fp16, bf16; with distillation) and each task head is built, never run, under a
MirroredStrategy over /gpu:0 and /gpu:1, and every op placed on a GPU is looked up in
TensorFlow's kernel registry (the pip build registers its GPU kernels on any machine). The
sessions' config allows soft placement besides.
"""

import json
import os

import pytest
import tensorflow as tf

from conftest import read_task_run
from test_classifier_e2e import make_task_dir
from test_resume_weights import TINY_CONFIG
from theseus.app import runner
from theseus.tasks.classifier import task as classifier_task
from theseus.tasks.ner_mrc import task as ner_task
from theseus.tasks.squad import task as squad_task
from theseus.training import distribute
from theseus.training import placement
from theseus.training import trainer

MODES = {
    "plain_fp32": {},
    "stage1_accumulation_fp16": {"suc_layers": 2, "gradient_accumulation_steps": 2,
                                 "precision": "fp16"},
    "stage1_distilled_bf16": {"suc_layers": 2, "precision": "bf16", "kd_module_weight": 1.0,
                              "kd_alpha": 0.5, "kd_hidden_weight": 1.0},
    "stage2_fp16": {"suc_layers": 2, "finetune_suc": True, "precision": "fp16"},
}
# Two predecessor layers, two successor modules of one layer each: every op kind of the 4 -> 2
# runs (the check is per op, so more layers add nothing but graph-building time).
CONFIG = dict(TINY_CONFIG, num_hidden_layers=2)
# Every mode and every head, each head in a reduced precision at least: the ops a mode adds
# (accumulation, loss scaling, the draw, distillation) do not depend on the head.
CASES = [("classifier", "plain_fp32"), ("classifier", "stage1_distilled_bf16"),
         ("classifier", "stage2_fp16"), ("squad", "stage1_distilled_bf16"),
         ("ner_mrc", "stage1_accumulation_fp16")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data_dir, minilm_dir):
  root = tmp_path_factory.mktemp("placement")
  config = str(root / "bert_config.json")
  with open(config, "w") as f:
    json.dump(CONFIG, f)
  common = {"bert_config_file": config, "vocab_file": os.path.join(minilm_dir, "vocab.txt"),
            "do_train": True, "max_seq_length": 64, "train_batch_size": 4,
            "max_train_examples": 16}
  squad_file = os.path.join(root, "squad.json")
  with open(os.path.join(shared_data_dir, "squad", "dev.json"), encoding="utf-8") as f:
    data = json.load(f)["data"][:1]
  data[0]["paragraphs"] = data[0]["paragraphs"][:1]
  with open(squad_file, "w", encoding="utf-8") as f:
    json.dump({"version": "1.1", "data": data}, f)
  conll = str(root / "conll")
  os.makedirs(conll)
  with open(os.path.join(shared_data_dir, "conll2003", "valid.txt"), encoding="utf-8") as f:
    head = f.read().split("\n\n")[:12]
  with open(os.path.join(conll, "train.txt"), "w", encoding="utf-8") as f:
    f.write("\n\n".join(head) + "\n\n")
  return {
      "checkpoint": tiny_checkpoint(str(root / "pre" / "model.ckpt"), CONFIG, 0),
      "stage1_checkpoint": tiny_checkpoint(str(root / "s1" / "model.ckpt"), CONFIG, 2),
      "ner_mrc": (ner_task.NerMrcRun, dict(common, data_dir=conll,
                                           output_dir=str(root / "ner"))),
      "classifier": (classifier_task.ClassifierRun, dict(
          common, task_name="mrpc", data_dir=make_task_dir(shared_data_dir, root, "mrpc"),
          output_dir=str(root / "classifier"))),
      "squad": (squad_task.SquadRun, dict(common, train_file=squad_file, max_query_length=16,
                                          doc_stride=16, output_dir=str(root / "squad"))),
  }


def tiny_checkpoint(path, config, suc_layers):
  """A checkpoint of a random BERT of `config` (with `suc_layers` successor modules)."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(modeling.BertConfig.from_dict(config), False, ids, ids, ids,
                       suc_layers=suc_layers, finetune_suc=bool(suc_layers))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(sess, path, write_meta_graph=False)
  return path


def gpu_graph(task_run_class, values):
  """The training graph of `values` built for two GPUs (never run)."""
  settings = runner.settings_of(task_run_class, **values)
  task_run, bert_config = read_task_run(task_run_class, settings, {"train"})
  task, train_path, num_features, _ = task_run.train_inputs(False)
  strategy = tf.distribute.MirroredStrategy(["/gpu:0", "/gpu:1"])
  cluster = distribute.Cluster(mode="mirrored", strategy=strategy, target="",
                               session_config=tf.compat.v1.ConfigProto(), is_chief=True,
                               worker_index=0, num_workers=1, num_replicas=2)
  plan = trainer.plan_training(settings.training, settings.actions.output_dir,
                               settings.replacing.stage(), num_features)
  return trainer.build_train_graph(settings.model, settings.training, settings.replacing,
                                   settings.distillation, settings.scale, bert_config, task,
                                   train_path, plan, cluster).graph


@pytest.mark.parametrize("head, mode", CASES)
def test_every_op_on_a_gpu_has_a_gpu_kernel(runs, head, mode):
  task_run_class, values = runs[head]
  values = dict(values, **MODES[mode])
  if mode != "plain_fp32":
    values["init_checkpoint"] = runs["checkpoint"]
  if mode == "stage2_fp16":
    values["init_checkpoint"] = runs["stage1_checkpoint"]
  graph = gpu_graph(task_run_class, values)
  on_gpu = [op for op in graph.get_operations() if "GPU" in op.device.upper()]
  assert len(on_gpu) > 500  # the replicas' model and update are there
  assert placement.ops_without_gpu_kernel(graph) == []


def test_an_inference_graph_with_fused_layer_norms_has_gpu_kernels():
  """The exported SavedModel's and the evaluation's graph (theseus/layer_norm.py's fused form)."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from theseus import layer_norm  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default(), tf.device("/gpu:0"), layer_norm.fused_layer_norms():
    ids = tf.compat.v1.placeholder(tf.int32, [None, None])
    modeling.BertModel(modeling.BertConfig.from_dict(CONFIG), False, ids, ids, ids)
  assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
  assert placement.ops_without_gpu_kernel(graph) == []


def test_sessions_allow_soft_placement():
  assert distribute.session_config(0, False).allow_soft_placement
  assert distribute.session_config(2, True).allow_soft_placement


def test_the_kernel_check_goes_by_type_attributes():
  graph = tf.Graph()
  with graph.as_default(), tf.device("/gpu:0"):
    floats = tf.constant([[1.0]], name="floats")
    tf.matmul(floats, floats, name="float_matmul")
    half = tf.cast(floats, tf.float16, name="half")
    tf.matmul(half, half, name="half_matmul")
    ints = tf.constant([[1]], tf.int32, name="ints")
    tf.matmul(ints, ints, name="int_matmul")  # an int32 Const has one, an int32 MatMul not
    tf.strings.length(tf.constant("text", name="text"), name="text_length")
  # The same types again after a first verdict: the answer stays per op.
  assert [name for name, _, _ in placement.ops_without_gpu_kernel(graph)] == [
      "int_matmul", "text", "text_length"]
  assert [name for name, _, _ in placement.ops_without_gpu_kernel(graph)] == [
      "int_matmul", "text", "text_length"]
