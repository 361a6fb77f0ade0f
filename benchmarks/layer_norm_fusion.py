#!/usr/bin/env python
"""Does a LayerNorm written as TensorFlow's fused batch norm become one oneDNN op, and what does
it save?

TensorFlow's oneDNN graph rewrite replaces the LayerNorm Keras writes (the rows reshaped to the
channels of an NCHW FusedBatchNormV3 in training mode, then * gamma + beta) by one
_MklLayerNorm op; the element-wise LayerNorm of modeling_theseus (mean, variance, rsqrt, four
element-wise passes) stays as it is. This script builds a 6-layer, hidden-384 BERT (the
embedded model's shape, random weights) once with each form, in one process, and prints:

* the inference graph TensorFlow runs: how many _MklLayerNorm ops it holds, the time of a
  forward pass at length 128, batch 1 and 32 (the forms alternate, --rounds times; min and
  median), and the largest difference of the two forms' outputs;
* a training step at batch 32 x 128 (dropout on, the pooled output's squared sum as the loss,
  plain SGD): min and median time;
* what TensorFlow Lite's converter makes of each form (the builtin ops of a LayerNorm alone).

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


def batch_norm_layer_norm(input_tensor, beta, gamma, epsilon=1e-12):
  """LayerNorm over the last axis as one FusedBatchNormV3: the rows of `input_tensor` ([..., H])
  are the channels of a [1, rows, H, 1] NCHW batch normalised in training mode (each channel by
  its own mean and variance, i.e. each row over its H values), then * gamma + beta."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.cast(input_tensor, tf.float32)
  shape = tf.shape(x)
  rows = tf.reduce_prod(shape[:-1])
  as_channels = tf.reshape(x, tf.stack([1, rows, x.shape[-1], 1]))
  normalised = tf.raw_ops.FusedBatchNormV3(
      x=as_channels, scale=tf.fill([rows], 1.0), offset=tf.fill([rows], 0.0),
      mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32), epsilon=epsilon,
      data_format="NCHW", is_training=True).y
  output = beta + tf.reshape(normalised, shape) * gamma
  return tf.cast(output, input_tensor.dtype)


def build(layer_norm, is_training, seed=1):
  """(session, input ids placeholder, output) of the model with `layer_norm` as its LayerNorm:
  the sequence output, or with `is_training` an SGD step on the pooled output."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  config = modeling.BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                               num_attention_heads=12, intermediate_size=1536,
                               hidden_act="gelu_exact")
  project_layer_norm = modeling.apply_layer_norm
  modeling.apply_layer_norm = layer_norm  # the model reads it when the graph is built
  graph = tf.Graph()
  try:
    with graph.as_default():
      tf1.set_random_seed(seed)
      ids = tf1.placeholder(tf.int32, [None, None])
      model = modeling.BertModel(config, is_training, ids, tf.ones_like(ids), tf.zeros_like(ids))
      output = model.get_sequence_output()
      if is_training:
        loss = tf.reduce_sum(tf.square(model.get_pooled_output()))
        output = tf1.train.GradientDescentOptimizer(1e-6).minimize(loss)
      sess = tf1.Session(graph=graph)
      sess.run(tf1.global_variables_initializer())
  finally:
    modeling.apply_layer_norm = project_layer_norm
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


def tflite_ops(layer_norm):
  """The sorted builtin op names TensorFlow Lite converts a [rows, 8] LayerNorm into."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  with tf.Graph().as_default() as graph:
    x = tf1.placeholder(tf.float32, [None, 8])
    beta = tf1.get_variable("beta", [8], initializer=tf1.zeros_initializer())
    gamma = tf1.get_variable("gamma", [8], initializer=tf1.ones_initializer())
    y = layer_norm(x, beta, gamma)
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer())
      model = tf1.lite.TFLiteConverter.from_session(sess, [x], [y]).convert()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the Interpreter's notice that it moves to LiteRT
    interpreter = tf.lite.Interpreter(model_content=model)
  return sorted({op["op_name"] for op in interpreter._get_ops_details()})  # pylint: disable=protected-access


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=8)
  args = parser.parse_args()
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TensorFlow is imported
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_eager_execution()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
  forms = collections.OrderedDict([("element-wise (modeling_theseus)", modeling.apply_layer_norm),
                                   ("FusedBatchNormV3 form", batch_norm_layer_norm)])
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
  print("\nTensorFlow Lite builtins of one LayerNorm:")
  for name, form in forms.items():
    print("  %-32s %s" % (name, ", ".join(tflite_ops(form))))


if __name__ == "__main__":
  main()
