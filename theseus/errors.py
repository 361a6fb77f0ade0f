"""The project's errors. Imports no TensorFlow.

Two kinds of failure reach the user:

* `InputDataError`: bad input (a data file, a config, a checkpoint, a flag). Raised before any
  long work; the command line prints one line `error: <file>[:<line>]: <problem>` and exits 2.
* `TrainingError`: a fault during a run (NaN / Inf loss, a failed write). The command line prints
  `error: <problem>` naming the step and exits 1.

cli.run_main turns both (and failed reads / writes) into that line and exit code.
"""


class InputDataError(ValueError):
  """Bad user input (data file, config, checkpoint, flags).

  The message is one line naming the file (and line, when known) and the problem; the command line
  entry points print it and exit with a non-zero code before any long work starts.
  """

  def __init__(self, message, path=None, line=None):
    where = ""
    if path is not None:
      where = str(path)
      if line is not None:
        where += ":%d" % line
      where += ": "
    super(InputDataError, self).__init__(where + message)
    self.path = path
    self.line = line


class TrainingError(RuntimeError):
  """A fault during training (NaN / Inf loss, failed write); the message names the step."""


def short_error(e):
  """The line of a (TensorFlow) error that says what went wrong.

  For example "...; No space left on device", not "Graph execution error:" or the node's Python
  stack.
  """
  lines = [l.strip() for l in str(getattr(e, "message", e)).splitlines() if l.strip()]
  for i, line in enumerate(lines[:-1]):
    if line.startswith("Node:"):
      return lines[i + 1]
  useful = [l for l in lines if l != "Graph execution error:" and
            not l.startswith(("Detected at node", "File "))]
  return (useful or lines or [type(e).__name__])[0]
