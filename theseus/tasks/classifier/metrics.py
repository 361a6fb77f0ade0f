"""The metrics of sentence (pair) classification and regression, in pure numpy.

Accuracy, F1 of the positive class, Matthews correlation, Pearson and Spearman correlation;
`compute_metrics` reports the ones a data set's processor names.
"""

import math

import numpy as np

from theseus.tasks.classifier import datasets


def _rankdata(values):
  """Ranks 1..n with ties given their average rank (like scipy.stats.rankdata)."""
  values = np.asarray(values, dtype=np.float64)
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  n = len(values)
  ranks = np.empty(n, dtype=np.float64)
  # Boundaries of runs of equal values.
  new_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1], [True]])
  starts = np.flatnonzero(new_run)
  for start, end in zip(starts[:-1], starts[1:]):
    ranks[order[start:end]] = (start + 1 + end) / 2.0
  return ranks


def pearson_correlation(x, y):
  """Pearson correlation coefficient; 0.0 when either input is constant."""
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  xc = x - x.mean()
  yc = y - y.mean()
  denominator = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
  if denominator == 0.0:
    return 0.0
  return float(np.clip(np.dot(xc, yc) / denominator, -1.0, 1.0))


def spearman_correlation(x, y):
  """Spearman rank correlation (Pearson of the average ranks; ties share their rank)."""
  return pearson_correlation(_rankdata(x), _rankdata(y))


def f1_score(predictions, labels, positive):
  """F1 of class `positive`; 0.0 when it is neither predicted nor present."""
  predictions = np.asarray(predictions)
  labels = np.asarray(labels)
  tp = float(np.sum((predictions == positive) & (labels == positive)))
  fp = float(np.sum((predictions == positive) & (labels != positive)))
  fn = float(np.sum((predictions != positive) & (labels == positive)))
  if tp == 0.0:
    return 0.0
  precision = tp / (tp + fp)
  recall = tp / (tp + fn)
  return 2.0 * precision * recall / (precision + recall)


def matthews_corrcoef(predictions, labels):
  """Matthews correlation coefficient (multi-class form); 0.0 when undefined.

  Undefined (a zero denominator) means all labels or all predictions are one class.
  """
  predictions = np.asarray(predictions).astype(np.int64)
  labels = np.asarray(labels).astype(np.int64)
  num_classes = int(max(predictions.max(), labels.max())) + 1
  confusion = np.zeros((num_classes, num_classes), dtype=np.float64)
  np.add.at(confusion, (labels, predictions), 1.0)
  t_sum = confusion.sum(axis=1)
  p_sum = confusion.sum(axis=0)
  n_correct = np.trace(confusion)
  n_samples = confusion.sum()
  cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
  cov_ypyp = n_samples ** 2 - np.dot(p_sum, p_sum)
  cov_ytyt = n_samples ** 2 - np.dot(t_sum, t_sum)
  if cov_ypyp * cov_ytyt == 0.0:
    return 0.0
  return float(cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp))


def _processor_for_metrics(task_name_or_processor):
  if isinstance(task_name_or_processor, datasets.DataProcessor):
    return task_name_or_processor
  name = str(task_name_or_processor).strip().lower()
  if name == "generic" or name not in datasets.PROCESSORS:
    raise ValueError("compute_metrics needs a known task name or a processor instance, got %r"
                     % (task_name_or_processor,))
  return datasets.PROCESSORS[name]()


def compute_metrics(task_name_or_processor, predictions, labels):
  """Computes the task's metrics.

  Main metric per task (the one that picks the best checkpoint, `processor.main_metric`):
  MRPC and QQP "f1" (of the positive class "1"), CoLA "mcc" (Matthews), STS-B "pearson",
  every other task "accuracy". Also reported: "accuracy" for every classification task,
  "f1" for MRPC/QQP/LCQMC, "spearman" for STS-B (average ranks for ties).

  Args:
    task_name_or_processor: a key of PROCESSORS or a DataProcessor instance.
    predictions: classification: class ids [N] or probabilities/logits [N, num_labels]
      (argmax taken); regression: values [N] or [N, 1].
    labels: classification: label ids [N]; regression: gold values [N].

  Returns:
    dict metric name -> float, plus "eval_examples" (int).

  Raises:
    ValueError: lengths differ or there are no examples.
  """
  processor = _processor_for_metrics(task_name_or_processor)
  predictions = np.asarray(predictions)
  labels = np.asarray(labels)
  if processor.is_regression:
    if predictions.ndim > 1:
      predictions = predictions.reshape(predictions.shape[0], -1)[:, 0]
    predictions = predictions.astype(np.float64)
    labels = labels.reshape(-1).astype(np.float64)
  else:
    if predictions.ndim == 2:
      predictions = np.argmax(predictions, axis=-1)
    predictions = predictions.reshape(-1).astype(np.int64)
    labels = labels.reshape(-1).astype(np.int64)
  if predictions.shape[0] != labels.shape[0]:
    raise ValueError("%d predictions but %d labels" % (predictions.shape[0], labels.shape[0]))
  if labels.shape[0] == 0:
    raise ValueError("no examples to evaluate")

  result = {}
  for name in processor.metric_names:
    if name == "accuracy":
      result[name] = float(np.mean(predictions == labels))
    elif name == "f1":
      positive = processor.get_labels().index(processor.positive_label)
      result[name] = f1_score(predictions, labels, positive)
    elif name == "mcc":
      result[name] = matthews_corrcoef(predictions, labels)
    elif name == "pearson":
      result[name] = pearson_correlation(predictions, labels)
    elif name == "spearman":
      result[name] = spearman_correlation(predictions, labels)
    else:
      raise ValueError("unknown metric %r" % (name,))
  result["eval_examples"] = int(labels.shape[0])
  return result

