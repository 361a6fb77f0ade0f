"""The input pipeline: TFRecord feature caches and the length-bucketed tf.data datasets.

Features are dicts of variable-length int / float lists (no padding on disk). A cache file is
named by a hash of everything the features depend on (data content, vocab content, lengths,
...), so a changed input rebuilds it and an unchanged one is read back. Batches are padded to
their longest sequence, not to max_seq_length.
"""

import collections
import hashlib
import json
import os
import time

from absl import logging
import tensorflow as tf

from theseus import files
from theseus.errors import TrainingError
from theseus.errors import short_error

CACHE_FORMAT_VERSION = 2  # 2: every record carries LENGTH_KEY
# Each record's number of positions, so that a worker can batch records without parsing them.
LENGTH_KEY = "__length"

# Training batches are grouped by length into these buckets (in word pieces).
BUCKET_BOUNDARIES = (16, 32, 48, 64, 96, 128, 192, 256, 384)


def cache_key(parts):
  """A short stable hash of a dict of things that change the features."""
  text = json.dumps(dict(parts, cache_format=CACHE_FORMAT_VERSION), sort_keys=True, default=str)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def write_records(path, records):
  """Writes serialized records (an iterable of bytes) to a TFRecord file via a temporary name."""
  tmp = "%s.tmp-%d" % (path, os.getpid())
  try:
    with tf.io.TFRecordWriter(tmp) as writer:
      for record in records:
        writer.write(record)
    os.replace(tmp, path)
  except BaseException:
    files.remove_quietly(tmp)
    raise


def _serialize(feature, int_keys, float_keys):
  out = collections.OrderedDict()
  out[LENGTH_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(
      value=[len(feature["input_ids"])]))
  for key in int_keys:
    out[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(feature[key])))
  for key in float_keys:
    out[key] = tf.train.Feature(float_list=tf.train.FloatList(value=list(feature[key])))
  return tf.train.Example(features=tf.train.Features(feature=out)).SerializeToString()


def write_feature_tfrecord(path, features, int_keys, float_keys=()):
  """Writes feature dicts (variable-length lists) to a TFRecord file via a temporary name."""
  write_records(path, (_serialize(f, int_keys, float_keys) for f in features))


def cached_features(cache_dir, name, key_parts, build_fn, int_keys, float_keys=(),
                    sort_by_length=False):
  """Returns (tfrecord_path, num_features), building the cache when its key is new.

  Args:
    cache_dir: directory of the caches.
    name: e.g. "train", "dev".
    key_parts: dict of what the features depend on (data file fingerprints, vocab fingerprint,
      max_seq_length, ...); a change rebuilds the cache.
    build_fn: () -> list of feature dicts.
    int_keys, float_keys: the feature names written (variable-length int64 / float lists).
    sort_by_length: write features sorted by length (evaluation: less padding per batch).

  Raises:
    TrainingError: the cache cannot be written (a full disk, an unwritable cache_dir).
  """
  tf.io.gfile.makedirs(cache_dir)
  key = cache_key(key_parts)
  path = os.path.join(cache_dir, "%s-%s.tfrecord" % (name, key))
  meta_path = path + ".json"
  if os.path.exists(path) and os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
    logging.info("Using cached %s features: %s (%d)", name, path, meta["num_features"])
    return path, meta["num_features"]
  start = time.time()
  features = build_fn()
  if sort_by_length:
    features = sorted(features, key=lambda ft: len(ft["input_ids"]))
  try:
    write_feature_tfrecord(path, features, int_keys, float_keys)
    files.atomic_write_text(meta_path, json.dumps(
        {"num_features": len(features), "key": key_parts}, default=str, indent=1))
  except (OSError, tf.errors.OpError) as e:
    raise TrainingError("could not write the %s feature cache %s (%s)"
                        % (name, path, short_error(e)))
  logging.info("Wrote %d %s features to %s in %.1fs", len(features), name, path,
               time.time() - start)
  return path, len(features)


def cached_features_with_metas(cache_dir, name, key_parts, convert, int_keys, float_keys,
                               sort_by_length, with_metas):
  """cached_features for features that come with python-side metas (windows, spans).

  convert() -> (features, metas), deterministic; it runs when the cache is built or when
  `with_metas` asks for the metas (which must then match the cached records one to one).
  Returns (path, number of features, (features, metas) or None).
  """
  built = []

  def features():
    if not built:
      built.append(convert())
    return built[0][0]

  if with_metas:
    features()
  path, n = cached_features(cache_dir, name, key_parts, features, int_keys, float_keys,
                            sort_by_length=sort_by_length)
  if not with_metas:
    return path, n, None
  if len(built[0][1]) != n:
    raise TrainingError("feature cache %s holds %d features but the data gives %d; delete it"
                        % (path, n, len(built[0][1])))
  return path, n, built[0]


def make_dataset(path, int_keys, float_keys, batch_size, is_training, seed=0, skip_batches=0,
                 bucket_boundaries=BUCKET_BOUNDARIES, shard_index=0, num_shards=1):
  """tf.data over a feature cache; batches padded to their longest sequence.

  Training: shuffled with a fixed seed (the same order on every run, so a resumed run can skip
  the batches it already consumed), repeated, and grouped by length so a batch holds sequences of
  similar length. The records are batched unparsed (by their LENGTH_KEY), and a shard (a worker
  of a cluster, shard_index of num_shards) parses only its rows of each global batch: every
  worker forms the same global batches and parses 1 / num_shards of them. Evaluation: one pass
  in file order, nothing dropped.

  Returns a dataset of dicts name -> [batch, max_len_in_batch] tensors (int32 / float32), with
  "input_mask" (1 on real positions) added; in training, `batch` is this shard's rows of the
  global batch of `batch_size` (which num_shards must divide).
  """
  spec = {k: tf.io.VarLenFeature(tf.int64) for k in int_keys}
  spec.update({k: tf.io.VarLenFeature(tf.float32) for k in float_keys})

  def dense(parsed):
    out = {k: tf.cast(tf.sparse.to_dense(parsed[k]), tf.int32) for k in int_keys}
    out.update({k: tf.sparse.to_dense(parsed[k]) for k in float_keys})
    ids = parsed["input_ids"]
    out["input_mask"] = tf.sparse.to_dense(tf.SparseTensor(
        ids.indices, tf.ones_like(ids.values, tf.int32), ids.dense_shape))
    return out

  d = tf.data.TFRecordDataset(path)
  if not is_training:
    # Records batched, then parsed a batch at a time (a per-record parse followed by unbatch()
    # crashes the process, inside TensorFlow's unbatch, on a key that the records lack).
    parse = _as_graph(lambda records: dense(tf.io.parse_example(records, spec)))
    return d.batch(batch_size).map(parse, num_parallel_calls=2, deterministic=True).prefetch(2)
  length_spec = {LENGTH_KEY: tf.io.FixedLenFeature([], tf.int64)}
  d = d.shuffle(10000, seed=seed, reshuffle_each_iteration=True).repeat()
  d = d.map(_as_graph(lambda record: {"record": record, "length": tf.io.parse_single_example(
      record, length_spec)[LENGTH_KEY]}), num_parallel_calls=2, deterministic=True)
  boundaries = list(bucket_boundaries)
  d = d.bucket_by_sequence_length(
      lambda x: tf.cast(x["length"], tf.int32), bucket_boundaries=boundaries,
      bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
  if skip_batches:
    d = d.skip(skip_batches)
  rows = batch_size // num_shards

  def parse_share(batch):
    records = batch["record"][shard_index * rows:(shard_index + 1) * rows]
    return dense(tf.io.parse_example(records, spec))

  return d.map(_as_graph(parse_share), num_parallel_calls=2, deterministic=True).prefetch(2)


def _as_graph(fn):
  """`fn` traced as it is: it has no Python control flow for AutoGraph to rewrite, and the
  rewrite (parsing and transforming its source) costs about half a second per process."""
  return tf.autograph.experimental.do_not_convert(fn)
