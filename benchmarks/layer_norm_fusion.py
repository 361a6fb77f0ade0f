#!/usr/bin/env python
"""Does the fused LayerNorm form become one oneDNN op, and what does it save?

theseus/layer_norm.py builds a LayerNorm in two forms: element-wise (mean, variance, rsqrt and
four passes over the tensor), and inside `fused_layer_norms()` as Keras writes its LayerNorm (the
rows as the channels of an NCHW FusedBatchNormV3 in training mode, then * gamma + beta), which
TensorFlow's oneDNN graph rewrite replaces by one _MklLayerNorm op. This script builds a
6-layer, hidden-384 BERT (the embedded model's shape, random weights) once with each form, in
one process, and prints:

* the inference graph TensorFlow runs: how many _MklLayerNorm ops it holds, the time of a
  forward pass at length 128, batch 1 and 32 (the forms alternate, --rounds times; min and
  median), and the largest difference of the two forms' outputs;
* a training step at batch 32 x 128 (dropout on, the pooled output's squared sum as the loss,
  plain SGD): min and median time;
* the TFLite file of each inference graph (float32, 2 threads): its op count and the time of
  an invocation at batch 1 x 128 (3 x --rounds, alternating).

  python benchmarks/layer_norm_fusion.py --rounds 8
"""

import argparse
import collections
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _form(fused):
  """The context the model is built in: the fused LayerNorm form or the element-wise one."""
  import contextlib  # pylint: disable=g-import-not-at-top
  from theseus import layer_norm  # pylint: disable=g-import-not-at-top
  return layer_norm.fused_layer_norms() if fused else contextlib.nullcontext()


def build(fused, is_training, seed=1):
  """(session, input ids placeholder, output) of the model with the `fused` LayerNorm form or
  not: the sequence output, or with `is_training` an SGD step on the pooled output."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  config = modeling.BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                               num_attention_heads=12, intermediate_size=1536,
                               hidden_act="gelu_exact")
  graph = tf.Graph()
  with graph.as_default(), _form(fused):
    tf1.set_random_seed(seed)
    ids = tf1.placeholder(tf.int32, [None, None])
    model = modeling.BertModel(config, is_training, ids, tf.ones_like(ids), tf.zeros_like(ids))
    output = model.get_sequence_output()
    if is_training:
      loss = tf.reduce_sum(tf.square(model.get_pooled_output()))
      output = tf1.train.GradientDescentOptimizer(1e-6).minimize(loss)
    sess = tf1.Session(graph=graph)
    sess.run(tf1.global_variables_initializer())
  return sess, ids, output


def op_counts(sess, ids, output, batch):
  """Counter of the op types in the graph TensorFlow runs for `output`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  meta = tf.compat.v1.RunMetadata()
  sess.run(output, {ids: batch}, options=tf.compat.v1.RunOptions(output_partition_graphs=True),
           run_metadata=meta)
  return collections.Counter(node.op for graph in meta.partition_graphs for node in graph.node)


def timed(variants, batch, rounds):
  """name -> list of seconds of `rounds` runs of each variant, alternating."""
  seconds = {name: [] for name in variants}
  for _ in range(rounds):
    for name, (sess, ids, output) in variants.items():
      start = time.perf_counter()
      sess.run(output, {ids: batch})
      seconds[name].append(time.perf_counter() - start)
  return seconds


def tflite_interpreter(sess, ids, output):
  """A TFLite interpreter (2 threads) of the graph of `output`, resized to batch 1 x 128."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with sess.graph.as_default():
    model = tf.compat.v1.lite.TFLiteConverter.from_session(sess, [ids], [output]).convert()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the Interpreter's notice that it moves to LiteRT
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=2)
  interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [1, 128])
  interpreter.allocate_tensors()
  return interpreter


def time_tflite(interpreters, batch, rounds):
  """name -> (outputs, list of seconds of `rounds` invocations, alternating)."""
  seconds, outputs = {name: [] for name in interpreters}, {}
  for round_ in range(rounds + 1):
    for name, interpreter in interpreters.items():
      interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
      start = time.perf_counter()
      interpreter.invoke()
      if round_:  # the first invocation prepares the kernels
        seconds[name].append(time.perf_counter() - start)
      outputs[name] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  return outputs, seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=8)
  args = parser.parse_args()
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TensorFlow is imported
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_eager_execution()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
  forms = collections.OrderedDict([("element-wise", False), ("fused (FusedBatchNormV3)", True)])
  rng = np.random.RandomState(0)
  inference = {name: build(form, False) for name, form in forms.items()}
  for batch_size in (1, 32):
    batch = rng.randint(1, 30000, (batch_size, 128)).astype(np.int32)
    first, second = (sess.run(out, {ids: batch}) for sess, ids, out in inference.values())
    print("\ninference, batch %d x 128: largest output difference %.2g"
          % (batch_size, np.abs(first - second).max()))
    seconds = timed(inference, batch, args.rounds)
    for name, (sess, ids, out) in inference.items():
      print("  %-32s min %7.1f ms  median %7.1f ms  _MklLayerNorm ops: %d" % (
          name, 1e3 * min(seconds[name]), 1e3 * np.median(seconds[name]),
          op_counts(sess, ids, out, batch[:1, :8])["_MklLayerNorm"]))
  interpreters = {name: tflite_interpreter(*model) for name, model in inference.items()}
  for sess, _, _ in inference.values():
    sess.close()
  training = {name: build(form, True) for name, form in forms.items()}
  batch = rng.randint(1, 30000, (32, 128)).astype(np.int32)
  for sess, ids, step in training.values():
    sess.run(step, {ids: batch})  # the first run builds the kernels
  seconds = timed(training, batch, max(3, args.rounds // 2))
  print("\ntraining step, batch 32 x 128:")
  for name in training:
    print("  %-32s min %7.0f ms  median %7.0f ms" % (name, 1e3 * min(seconds[name]),
                                                     1e3 * np.median(seconds[name])))
  batch = rng.randint(1, 30000, (1, 128)).astype(np.int32)
  outputs, seconds = time_tflite(interpreters, batch, 3 * args.rounds)
  first, second = outputs.values()
  print("\nTFLite (float32, 2 threads), batch 1 x 128: largest output difference %.2g"
        % np.abs(first - second).max())
  for name, interpreter in interpreters.items():
    details = interpreter._get_ops_details()  # pylint: disable=protected-access
    ops = collections.Counter(op["op_name"] for op in details)
    print("  %-32s min %7.1f ms  median %7.1f ms  %d ops (FILL %d, REDUCE_PROD %d)" % (
        name, 1e3 * min(seconds[name]), 1e3 * np.median(seconds[name]), sum(ops.values()),
        ops["FILL"], ops["REDUCE_PROD"]))


if __name__ == "__main__":
  main()
