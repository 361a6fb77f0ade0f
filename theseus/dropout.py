"""Dropout whose masks are a function of a key: the same masks again after a resume.

Inside `with dropout_key(seed):` every `dropout` call is one site, numbered in the order the
graph is built, and draws its mask from TensorFlow's stateless generator keyed by (seed, site).
The trainer's key is (run seed, replica, update, micro-batch), so a run resumed from a checkpoint
draws the masks an uninterrupted run drew, every replica and worker draws its own, and nothing
depends on the state of a random-number op that a new process starts afresh. Each draw is 16
bits (half the random numbers tf.nn.dropout takes): the rate is rounded to a multiple of 2^-16.
Outside a key, dropout is tf.nn.dropout, as google-research/bert's is.
"""

import contextlib
import threading

import tensorflow as tf

_keys = threading.local()  # the stack of keys of the thread that builds a graph
_SITE_STRIDE = 1000003  # key of site i: (seed0 * _SITE_STRIDE + i, seed1)


@contextlib.contextmanager
def dropout_key(seed):
  """Keys the dropout built inside: seed is an int64 Tensor [2]."""
  stack = _keys.__dict__.setdefault("stack", [])
  stack.append([seed, 0])
  try:
    yield
  finally:
    stack.pop()


def dropout(input_tensor, rate):
  """input_tensor with elements zeroed at `rate` and the others scaled by 1 / (1 - rate)."""
  if rate is None or rate == 0.0:
    return input_tensor
  stack = getattr(_keys, "stack", None)
  if not stack:
    return tf.nn.dropout(input_tensor, rate=rate)
  stack[-1][1] += 1
  key = stack[-1][0] * tf.constant([_SITE_STRIDE, 1], tf.int64) + [stack[-1][1], 0]
  with tf.name_scope("dropout"):
    size = tf.size(input_tensor, out_type=tf.int64)
    bits = tf.random.stateless_uniform([(size + 1) // 2], key, minval=None, maxval=None,
                                       dtype=tf.uint32)
    threshold = int(round(rate * 65536))
    keep = tf.reshape(tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size] >= threshold,
                      tf.shape(input_tensor))
    kept = input_tensor * tf.cast(65536.0 / (65536 - threshold), input_tensor.dtype)
    return tf.where(keep, kept, tf.zeros([], input_tensor.dtype))
