#!/usr/bin/env python
"""Does the tanh GELU of google-research/bert checkpoints fuse into its MatMul, and what does it save?

Builds the inference graph of a 6-layer, hidden-384 BERT (the embedded model's shape, random
weights, "gelu" = the tanh approximation as google-research/bert configs mean it) twice in one
process: with google-research/bert's arrangement of the formula, x * (0.5 * (1 + tanh(...))),
and with modeling_theseus.gelu. For each it prints the fused MatMul ops TensorFlow's oneDNN
rewrite made (their fused_ops) and the time of a forward pass at length 128, batch 1 and 32
(the two alternate, --rounds times; min and median), and the largest difference of their outputs.

  python benchmarks/gelu_fusion.py
"""

import argparse
import collections
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def google_gelu(x):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return x * (0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))))


def build(activation, seed=1):
  """(session, input placeholder, sequence output) of the model with `activation`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  config = modeling.BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                               num_attention_heads=12, intermediate_size=1536,
                               hidden_act=activation)
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(seed)
    ids = tf1.placeholder(tf.int32, [None, None])
    output = modeling.BertModel(config, False, ids, tf.ones_like(ids),
                                tf.zeros_like(ids)).get_sequence_output()
    sess = tf1.Session(graph=graph)
    sess.run(tf1.global_variables_initializer())
  return sess, ids, output


def fused_matmuls(sess, ids, output, batch):
  """Counter of (op type, fused_ops) of the fused MatMuls in the graph TensorFlow runs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  meta = tf.compat.v1.RunMetadata()
  sess.run(output, {ids: batch}, options=tf.compat.v1.RunOptions(output_partition_graphs=True),
           run_metadata=meta)
  return collections.Counter(
      (node.op, "+".join(x.decode() for x in node.attr["fused_ops"].list.s))
      for graph in meta.partition_graphs for node in graph.node if "FusedMatMul" in node.op)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_eager_execution()
  variants = {"google-research/bert's formula": build(google_gelu), "modeling_theseus.gelu":
              build("gelu")}
  rng = np.random.RandomState(0)
  for batch_size in (1, 32):
    batch = rng.randint(1, 30000, (batch_size, 128)).astype(np.int32)
    outputs = {name: sess.run(out, {ids: batch}) for name, (sess, ids, out) in variants.items()}
    first, second = outputs.values()
    print("\nbatch %d x 128: largest output difference %.2g" % (batch_size,
                                                              np.abs(first - second).max()))
    seconds = {name: [] for name in variants}
    for _ in range(args.rounds):
      for name, (sess, ids, out) in variants.items():
        start = time.perf_counter()
        sess.run(out, {ids: batch})
        seconds[name].append(time.perf_counter() - start)
    for name, (sess, ids, out) in variants.items():
      print("  %-32s min %7.1f ms  median %7.1f ms  fused: %s" % (
          name, 1e3 * min(seconds[name]), 1e3 * np.median(seconds[name]),
          dict(fused_matmuls(sess, ids, out, batch[:1, :8]))))


if __name__ == "__main__":
  main()
