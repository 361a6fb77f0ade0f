"""The registry of tasks, one line per task.

A task's folder holds its data reading, features, head, metrics, decoding and serving; its
task.py defines KIND, RUN (its base.TaskRun) and SERVING (its base.ServingTask). Adding a task is
its folder, a line here and a thin command line like run_classifier.py; nothing else changes.
"""

import importlib

# Task kind (written into every export) -> the module of its RUN and SERVING.
TASKS = {
    "classifier": "theseus.tasks.classifier.task",
    "ner_mrc": "theseus.tasks.ner_mrc.task",
    "squad": "theseus.tasks.squad.task",
}


def task_module(kind):
  """The task.py module of a registered task kind (KeyError for an unknown one)."""
  return importlib.import_module(TASKS[kind])
