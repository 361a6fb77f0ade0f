"""Runs a training command as N worker processes of one cluster on this machine.

  python launch_workers.py --num_workers=2 -- python run_classifier.py --do_train ... \\
      --train_batch_size=32

Each worker gets TF_CONFIG for a cluster of N workers on free 127.0.0.1 ports and the command
with --distribute=multi_worker added; its output lines are prefixed with `[worker i]`. When one
worker fails, the others are stopped, and the launcher exits with the failed worker's code;
--timeout_s bounds the whole run; Ctrl-C stops every worker (exit 130). The workers end with the
launcher, also when it is killed. On a machine with GPUs each worker sees only its own
(CUDA_VISIBLE_DEVICES): by default the GPUs are shared out evenly, --gpus_per_worker=g gives
each g, --gpus_per_worker=0 hides them (CPU workers). Several machines need no launcher: start
the same command on each with its own TF_CONFIG (README "Several GPUs, several machines").
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
  p.add_argument("--gpus_per_worker", type=int, default=-1, help="GPUs each worker sees (-1: "
                 "the machine's GPUs shared out evenly; 0: none, CPU workers)")
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


def visible_gpus(environ=None):
  """The GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list
  ([] without GPUs or without nvidia-smi)."""
  environ = os.environ if environ is None else environ
  if "CUDA_VISIBLE_DEVICES" in environ:
    return [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",")
            if g.strip() and not g.strip().startswith("-")]
  try:
    listing = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30).stdout.decode()
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def worker_gpus(gpus, num_workers, gpus_per_worker):
  """Per worker, its CUDA_VISIBLE_DEVICES value (None: leave the environment as it is).

  Raises:
    ValueError: the GPUs cannot be shared out so (one line).
  """
  if gpus_per_worker == 0:
    return ["-1"] * num_workers
  if not gpus:
    if gpus_per_worker > 0:
      raise ValueError("--gpus_per_worker=%d but this machine shows no GPU" % gpus_per_worker)
    return [None] * num_workers
  per = gpus_per_worker if gpus_per_worker > 0 else len(gpus) // num_workers
  if per < 1 or per * num_workers > len(gpus):
    raise ValueError("%d workers cannot have %s GPU(s) each of the %d visible (%s): use fewer "
                     "workers, --gpus_per_worker=0 for CPU workers, or another split"
                     % (num_workers, per if per >= 1 else "one", len(gpus), ",".join(gpus)))
  return [",".join(gpus[i * per:(i + 1) * per]) for i in range(num_workers)]


def worker_environment(addresses, index, cuda_visible_devices=None):
  """This process's environment with the TF_CONFIG of worker `index` (and its GPUs)."""
  env = dict(os.environ)
  env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                 "task": {"type": "worker", "index": index}})
  if cuda_visible_devices is not None:
    env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
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


def start_workers(command, num_workers, gpus=None):
  """Starts the workers (gpus: each one's CUDA_VISIBLE_DEVICES, or None)."""
  addresses = ["127.0.0.1:%d" % port for port in free_ports(num_workers)]
  gpus = gpus or [None] * num_workers
  workers = []
  for i in range(num_workers):
    process = subprocess.Popen(with_multi_worker(command),
                               env=worker_environment(addresses, i, gpus[i]),
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
  try:
    gpus = worker_gpus(visible_gpus(), args.num_workers, args.gpus_per_worker)
  except ValueError as e:
    print("launch_workers: error: %s" % e, file=sys.stderr)
    return 2
  workers = start_workers(args.command, args.num_workers, gpus)
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
