"""LayerNorm in the two forms TensorFlow runs differently: element-wise, and as one fused op.

`layer_norm` is google-research/bert's LayerNorm over the last axis, computed in float32. Built
plainly it is element-wise (mean, variance, rsqrt and four passes over the tensor), the form
google-research/bert writes and TFLite runs fastest. Inside `with fused_layer_norms():` it is
written as Keras writes its LayerNorm, the rows of the input as the channels of an NCHW
FusedBatchNormV3 in training mode, which TensorFlow's oneDNN graph rewrite replaces by one
_MklLayerNorm op in an inference graph: an inference pass of the embedded model at batch
32 x 128 is about 9% faster (benchmarks/layer_norm_fusion.py), outputs within 3e-6 of the
element-wise form. A training graph is not rewritten (its step measured within noise of the
element-wise form's), so only inference graphs are built inside it.
"""

import contextlib
import threading

import tensorflow as tf

_forms = threading.local()  # the depth of fused_layer_norms() of the thread that builds a graph


@contextlib.contextmanager
def fused_layer_norms():
  """The LayerNorms built inside take the form TensorFlow fuses into one op."""
  _forms.depth = getattr(_forms, "depth", 0) + 1
  try:
    yield
  finally:
    _forms.depth -= 1


def layer_norm(input_tensor, beta, gamma, epsilon=1e-12):
  """LayerNorm of `input_tensor` ([..., H]) over its last axis with `beta` and `gamma` ([H]),
  computed in float32; returns a Tensor of input_tensor's dtype and shape."""
  x = tf.cast(input_tensor, tf.float32)
  if getattr(_forms, "depth", 0):
    normalised = _normalise_rows_as_batch_norm(x, epsilon)
    output = normalised * gamma + beta
  else:
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    output = (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta
  return tf.cast(output, input_tensor.dtype)


def _normalise_rows_as_batch_norm(x, epsilon):
  """(x - mean) / sqrt(variance + epsilon) of each row of float32 `x` ([..., H]), as one
  FusedBatchNormV3: the rows are the channels of a [1, rows, H, 1] NCHW batch in training mode
  (each channel normalised by its own mean and variance), unit scale, zero offset."""
  shape = tf.shape(x)
  rows = tf.reduce_prod(shape[:-1])
  as_channels = tf.reshape(x, tf.stack([1, rows, shape[-1], 1]))
  normalised = tf.raw_ops.FusedBatchNormV3(
      x=as_channels, scale=tf.fill([rows], 1.0), offset=tf.fill([rows], 0.0),
      mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32), epsilon=epsilon,
      data_format="NCHW", is_training=True).y
  return tf.reshape(normalised, shape)
