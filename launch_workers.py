"""Runs a training command as N worker processes of one cluster on this machine.

  python launch_workers.py --num_workers=2 -- python run_classifier.py --do_train ... \\
      --train_batch_size=32

Each worker gets TF_CONFIG for a cluster of N workers on free 127.0.0.1 ports and the command
with --distribute=multi_worker added; its output lines are prefixed with `[worker i]`. When one
worker fails, the others are stopped, and the launcher exits with the failed worker's code;
--timeout_s bounds the whole run; Ctrl-C stops every worker (exit 130). The workers end with the
launcher, also when it is killed. Several machines need no launcher: start the same command on
each with its own TF_CONFIG (README "Several GPUs, several machines").
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--num_workers", type=int, default=2, help="worker processes (>= 1)")
  p.add_argument("--timeout_s", type=float, default=0, help="stop every worker after this "
                 "many seconds and exit 124 (0: no limit)")
  p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the training command")
  args = p.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    p.error("give the training command after --")
  if args.num_workers < 1:
    p.error("--num_workers must be >= 1")
  args.command = command
  return args


def free_ports(n):
  """n distinct ports that were free on 127.0.0.1 a moment ago."""
  sockets = []
  try:
    for _ in range(n):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def worker_environment(addresses, index):
  """This process's environment with the TF_CONFIG of worker `index`."""
  env = dict(os.environ)
  env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                 "task": {"type": "worker", "index": index}})
  return env


def with_multi_worker(command):
  """The command with --distribute=multi_worker (replacing a --distribute it has)."""
  kept = [a for a in command if not a.startswith("--distribute=")]
  return kept + ["--distribute=multi_worker"]


def _relay(stream, prefix):
  for line in iter(stream.readline, b""):
    sys.stdout.buffer.write(prefix + line)
    sys.stdout.buffer.flush()


def _end_with_launcher():
  """In a worker, before it runs: SIGTERM when the launcher dies (Linux's parent-death signal)."""
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
  except (OSError, AttributeError):
    pass


def start_workers(command, num_workers):
  addresses = ["127.0.0.1:%d" % port for port in free_ports(num_workers)]
  workers = []
  for i in range(num_workers):
    process = subprocess.Popen(with_multi_worker(command), env=worker_environment(addresses, i),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_end_with_launcher)
    relay = threading.Thread(target=_relay, args=(process.stdout, b"[worker %d] " % i))
    relay.daemon = True
    relay.start()
    workers.append((process, relay))
  return workers


def stop_workers(workers):
  """SIGTERM to every worker still running (its process group), SIGKILL after 5 s."""
  for process, _ in workers:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGTERM)
  deadline = time.time() + 5
  for process, _ in workers:
    while process.poll() is None and time.time() < deadline:
      time.sleep(0.1)
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()


def wait_for_workers(workers, timeout_s):
  """The exit code of the run: the first failure's, 124 on timeout, else 0."""
  start = time.time()
  while True:
    codes = [process.poll() for process, _ in workers]
    failed = [c for c in codes if c not in (None, 0)]
    if failed:
      return failed[0]
    if all(c == 0 for c in codes):
      return 0
    if timeout_s and time.time() - start > timeout_s:
      return 124
    time.sleep(0.2)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  workers = start_workers(args.command, args.num_workers)
  signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
  code, why = 1, "stopped"
  try:
    code = wait_for_workers(workers, args.timeout_s)
    why = "timed out" if code == 124 else "a worker exited with %d" % code
  except KeyboardInterrupt:
    code, why = 130, "interrupted"
  finally:
    if code:
      sys.stdout.write("launch_workers: %s; stopping the %s workers\n" % (
          why, "other" if code not in (124, 130) else "running"))
    stop_workers(workers)
    for _, relay in workers:
      relay.join(timeout=5)
    sys.stdout.flush()
  return code


if __name__ == "__main__":
  sys.exit(main())
