"""Reading and writing files safely. Imports no TensorFlow.

* `read_text_lines`: the one reader of the project's text inputs (data files, vocabularies, query
  maps): UTF-8 with an optional BOM, "\\n" or "\\r\\n" line ends, one-line errors naming the file
  and line.
* `atomic_write_text`, `publish_dir`: a file or a directory appears complete or not at all; a
  crash (a kill, a full disk) never leaves a half-written one in place.
* `read_json_object`: the one JSON reader of the project's inputs (one-line errors).
* `file_digest`: a content hash (cache keys, conversion stamps).
* `DirectoryLock`: one run at a time in an output directory.
"""

import atexit
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import time

from theseus.errors import InputDataError

logger = logging.getLogger(__name__)


def read_text_lines(path, encoding="utf-8", what="file"):
  """Reads a text file as a list of lines (line ends stripped).

  Args:
    path: the file.
    encoding: its encoding (a leading BOM is dropped).
    what: how the file is named in error messages ("file", "vocab file", ...).

  Returns:
    list of str, one per line; a final line end does not start another line.

  Raises:
    InputDataError: naming the file (and the line) when it is missing, is a directory, is empty
      (or blank), or holds bytes that are not valid in `encoding`.
  """
  if not path or not os.path.exists(path):
    raise InputDataError("%s not found" % what, path)
  if os.path.isdir(path):
    raise InputDataError("is a directory, expected a %s" % what, path)
  with open(path, "rb") as f:
    data = f.read()
  if not data.strip():
    raise InputDataError("%s is empty" % what, path)
  return decode_lines(data, path, encoding)


def decode_lines(data, path, encoding="utf-8"):
  """The lines of `data` (bytes read from `path`, a file or a name such as <stdin>), decoded
  as read_text_lines decodes a file; InputDataError naming the line of a bad byte."""
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise InputDataError("bytes that are not valid %s (byte %d)" % (encoding, e.start), path, line)
  if text.startswith("\ufeff"):
    text = text[1:]
  # Split on "\n" only: str.splitlines() would also break on U+2028, U+0085 or form feeds that
  # real text (and vocabulary tokens) contain, shifting the line numbers (and token ids).
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_json_object(path, what="JSON file"):
  """Reads a JSON object (a dict) from `path` (UTF-8, an optional BOM).

  Raises:
    InputDataError: naming the file when it is missing, a directory, not UTF-8, not valid JSON
      or not an object.
  """
  if not path or not os.path.exists(path):
    raise InputDataError("%s not found" % what, path)
  if os.path.isdir(path):
    raise InputDataError("%s is a directory, expected a file" % what, path)
  try:
    with open(path, "rb") as f:
      data = json.loads(f.read().decode("utf-8-sig"))
  except (ValueError, UnicodeDecodeError) as e:
    raise InputDataError("%s is not valid JSON (%s)" % (what, e), path)
  if not isinstance(data, dict):
    raise InputDataError("%s is not a JSON object" % what, path)
  return data


def file_digest(path, algorithm="sha1"):
  """The hex digest of a file's bytes (cache keys use content, not names or times)."""
  h = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()


def remove_quietly(path):
  try:
    os.remove(path)
  except OSError:
    pass


def atomic_write_bytes(path, data):
  """Writes `data` to `path` through a temporary file and a rename."""
  tmp = "%s.tmp-%d" % (path, os.getpid())
  try:
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    remove_quietly(tmp)  # e.g. a full disk: no half-written file is left behind
    raise


def atomic_write_text(path, text):
  """Writes `text` (UTF-8) to `path` through a temporary file and a rename."""
  atomic_write_bytes(path, text.encode("utf-8"))


def make_temp_dir_beside(target_dir):
  """A new empty directory `.<name>.tmp-<pid>` next to `target_dir` (same file system)."""
  parent = os.path.dirname(os.path.abspath(target_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, ".%s.tmp-%d" % (os.path.basename(os.path.abspath(target_dir)),
                                             os.getpid()))
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  return tmp


def recover_dir(target_dir):
  """Puts back a previous `target_dir` left as `<target_dir>.old-<pid>` by a kill.

  A kill between publish_dir's two renames leaves no `target_dir`. Returns True when one was
  restored.
  """
  if os.path.exists(target_dir):
    return False
  olds = sorted(glob.glob(target_dir + ".old-*"), key=os.path.getmtime)
  if not olds:
    return False
  os.rename(olds[-1], target_dir)
  logger.warning("restored %s from %s (an earlier replacement was interrupted)", target_dir,
                 olds[-1])
  return True


def publish_dir(new_dir, target_dir, keep_other_files=False):
  """Puts the finished directory `new_dir` at `target_dir`, replacing a previous one.

  The previous target survives until the new one is in place (if a kill falls between the two
  renames, recover_dir puts the previous one back), so `target_dir` is always either the whole
  previous directory or the whole new one.

  Args:
    new_dir: the finished directory (on the same file system, e.g. from make_temp_dir_beside).
    target_dir: where it goes.
    keep_other_files: copy the entries of a previous `target_dir` that `new_dir` lacks into it
      first (for a directory the user names, which may hold files of theirs); by default the
      previous directory goes as a whole (an export, where an old file would be stale).

  Raises:
    InputDataError: `target_dir` exists and is not a directory.
  """
  target_dir = os.path.abspath(target_dir)
  recover_dir(target_dir)
  if os.path.exists(target_dir) and not os.path.isdir(target_dir):
    raise InputDataError("output path exists and is not a directory", target_dir)
  old = None
  if os.path.exists(target_dir):
    if keep_other_files:
      for name in sorted(set(os.listdir(target_dir)) - set(os.listdir(new_dir))):
        source = os.path.join(target_dir, name)
        copy = shutil.copytree if os.path.isdir(source) else shutil.copy2
        copy(source, os.path.join(new_dir, name))
    old = target_dir + ".old-%d" % os.getpid()
    os.rename(target_dir, old)
  os.rename(new_dir, target_dir)
  if old:
    shutil.rmtree(old, ignore_errors=True)


LOCK_FILE = ".theseus.lock"


def _process_start(pid):
  """A process's start time in clock ticks (/proc/<pid>/stat), or None when it is gone (or
  unknown)."""
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _holder_alive(holder):
  """Whether the process a lock file names still runs (on this host; another host's: assumed)."""
  if holder.get("host") != socket.gethostname():
    return True
  start = _process_start(int(holder.get("pid", -1)))
  return start is not None and start == holder.get("start")


class DirectoryLock(object):
  """`<directory>/.theseus.lock`: one run at a time writes into a directory.

  The file holds the holder's pid, host and start time; a second run refuses in one line while
  the holder lives, and takes the directory over when it is gone (a kill -9 leaves the file).
  """

  def __init__(self, directory):
    self.path = os.path.join(directory, LOCK_FILE)
    self.held = False

  def acquire(self):
    """Takes the lock or raises InputDataError naming the run that holds it."""
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "start": _process_start(os.getpid()), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is not None and _holder_alive(holder):
          raise InputDataError(
              "another run (pid %s on %s, since %s) writes into this output directory; wait "
              "for it to end or use another --output_dir (if it is gone, delete %s)"
              % (holder.get("pid"), holder.get("host"), holder.get("since"), LOCK_FILE),
              os.path.dirname(self.path))
        logger.warning("taking over %s from a run that is gone (%s)", self.path, holder)
        remove_quietly(self.path)
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(mine, f)
      self.held = True
      atexit.register(self.release)
      return self
    raise InputDataError("could not take the lock %s" % self.path)

  def _holder(self):
    try:
      with open(self.path) as f:
        return json.load(f)
    except FileNotFoundError:
      return {"pid": -1, "host": socket.gethostname()}  # released meanwhile: try again
    except (OSError, ValueError):
      # Being written this very moment, or a crash left it half-written: wait a little once.
      time.sleep(0.5)
      try:
        with open(self.path) as f:
          return json.load(f)
      except (OSError, ValueError):
        return None

  def release(self):
    if self.held:
      self.held = False
      remove_quietly(self.path)
