"""How the command lines run: process settings, TensorFlow's own messages, one-line errors.

Imports no TensorFlow, and changes nothing when imported: a run script calls
`prepare_process(argv)` first thing when it runs as a script, before TensorFlow is imported,
because TensorFlow reads its settings once, at import:

* TF_ENABLE_ONEDNN_OPTS=1 (unless set): oneDNN kernels. TensorFlow 2.21 leaves them off on CPUs
  without AVX-512; on the AVX2 machines the project is measured on they make training and
  inference about 1.3-1.6x faster (BENCHMARKS.md). TF_ENABLE_ONEDNN_OPTS=0 opts out.
* TF_USE_LEGACY_KERAS=1 (unless set): the project uses no Keras, and without a tf_keras package
  TensorFlow then skips importing Keras 3 at start-up (1.5 s of every run).
* --xla on the command line: TF_XLA_FLAGS gets --tf_xla_cpu_global_jit, without which
  TensorFlow does not cluster CPU graphs for XLA (on GPUs --xla alone does).
* TensorFlow's C++ start-up and runtime messages (CUDA probing, oneDNN notices, CPU-feature hints,
  "All log messages before absl::InitializeLog() ...", TFLite's delegate notice) are dropped.
  TensorFlow 2.21 writes them through Abseil logging before anything can configure it, and
  TF_CPP_MIN_LOG_LEVEL no longer stops them, so the process's stderr goes through a small filter
  process that drops exactly those lines (INFO and WARNING, and the CUDA probing errors of a
  machine without a GPU) and passes everything else on, in order. `--tf_verbose` on the command
  line turns all of this off.

`quiet_tensorflow_python_logs` hides TensorFlow's Python-side deprecation warnings, and
`run_main` turns the project's errors into one `error:` line and an exit code, and ends the
process without the interpreter's teardown (`exit_now`).
"""

import atexit
import logging
import os
import subprocess
import sys
import traceback
import warnings

from theseus import errors

VERBOSE_FLAG = "tf_verbose"
XLA_FLAG = "xla"

# The filter process: stdin is this process's stderr, its own stderr the real one.
_FILTER_CODE = r"""
import re, signal, sys
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
  signal.signal(sig, signal.SIG_IGN)  # it ends when the run closes its stderr, not before
# C++ log lines name a .cc / .h source file; the project's own absl log lines (same layout)
# name a .py file and always pass.
noise = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [^\]]+\.(?:cc|h):\d+\] "
    rb"|\d{4}-\d\d-\d\d [\d:.]+: [IW] [^\]]+\.(?:cc|h):\d+\] "
    rb"|E\d{4} [\d:.]+ +\d+ [^\]]+\.(?:cc|h):\d+\] .*(?:cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS)"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler)")
out = sys.stderr.buffer
for line in sys.stdin.buffer:
  if not noise.match(line):
    out.write(line)
    out.flush()
"""

_filter = {}  # "process", "stderr": the filter and a descriptor of the real stderr


def usable_cores():
  """The CPUs this process may run on (its affinity mask where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def bool_flag_on(argv, flag_name):
  """Whether the command line `argv` turns the boolean flag `flag_name` on (the last one wins)."""
  on = False
  for arg in argv:
    name, _, value = arg.lstrip("-").partition("=")
    if name == flag_name:
      on = value.lower() not in ("0", "false", "no")
    elif name == "no" + flag_name:
      on = False
  return on


def wants_tensorflow_messages(argv):
  """Whether the command line `argv` asks for TensorFlow's own messages (--tf_verbose)."""
  return bool_flag_on(argv, VERBOSE_FLAG)


def prepare_process(argv):
  """Sets up a run script's process before TensorFlow is imported (see the module docstring)."""
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  if bool_flag_on(argv, XLA_FLAG):
    os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") +
                                  " --tf_xla_cpu_global_jit").strip()
  if not wants_tensorflow_messages(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    filter_tensorflow_stderr()


def filter_tensorflow_stderr():
  """Routes this process's stderr (descriptor 2) through the filter process.

  Child processes inherit the filtered stderr. If this process dies, the filter still passes on
  what it was sent, then ends; on a normal exit (and in run_main) close_stderr_filter waits for
  it.
  """
  if _filter:
    return
  sys.stderr.flush()
  read_end, write_end = os.pipe()
  process = subprocess.Popen([sys.executable, "-c", _FILTER_CODE], stdin=read_end)
  os.close(read_end)
  _filter["stderr"] = os.dup(2)
  _filter["process"] = process
  os.dup2(write_end, 2)
  os.close(write_end)
  atexit.register(close_stderr_filter)


def close_stderr_filter():
  """Hands stderr back to the real one and waits until the filter has passed everything on."""
  if not _filter:
    return
  try:
    sys.stderr.flush()
  except (OSError, ValueError):
    pass
  os.dup2(_filter.pop("stderr"), 2)  # closes the pipe: the filter reads to its end and stops
  process = _filter.pop("process")
  try:
    process.wait(timeout=10)
  except subprocess.TimeoutExpired:
    pass  # a child still writes into it; it ends with that child


def quiet_tensorflow_python_logs():
  """Hides TensorFlow's Python-side warnings (deprecations) for this process."""
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  warnings.filterwarnings("ignore", category=FutureWarning)


def _is_tensorflow_error(e):
  """Whether `e` is a tf.errors.OpError (without importing TensorFlow when nothing has)."""
  tf = sys.modules.get("tensorflow")
  return tf is not None and isinstance(e, tf.errors.OpError)


def _exit_with(message, code):
  sys.stderr.write("error: %s\n" % message)
  exit_now(code)


def exit_now(code=0):
  """Runs the exit handlers, flushes the output and ends the process without the interpreter's
  teardown.

  run_main ends every script so: tearing down TensorFlow's modules takes more than a second,
  and with a tf.distribute.Server target (a multi-worker run) Session.close() does not return.
  """
  run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
  if run_exit_handlers is not None:
    run_exit_handlers()  # logging's flush, the output directory's lock, the stderr filter
  sys.stdout.flush()
  sys.stderr.flush()
  close_stderr_filter()
  os._exit(code)  # pylint: disable=protected-access


def run_main(main_fn, argv):
  """Runs main_fn(argv), then ends the process (exit_now); bad input and faults become one line
  on stderr and exit code 2 / 1.

  InputDataError exits 2, TrainingError 1; any other failed read or write (OSError,
  tf.errors.OpError, e.g. a full disk during export) prints its traceback for a bug report, then
  the one line that says what went wrong, and exits 1. Any other exception (a bug) propagates.
  """
  try:
    main_fn(argv)
    exit_now(0)
  except errors.InputDataError as e:
    _exit_with(e, 2)
  except errors.TrainingError as e:
    _exit_with(e, 1)
  except Exception as e:  # pylint: disable=broad-except
    if not (isinstance(e, OSError) or _is_tensorflow_error(e)):
      raise
    traceback.print_exc()
    _exit_with(" ".join(str(e).split()) if isinstance(e, OSError) else errors.short_error(e), 1)
