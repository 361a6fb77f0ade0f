"""Data-parallel training: two local workers train as one process with the same global batch.

Each run is the real command line in subprocesses (launch_workers.py for the cluster), dropout
off, bounded in time. Two workers must end with the weights of one process within 1e-6 (the
all-reduce sums in another order) for stage 2, and so must two mirrored replicas in one process;
for stage 1 with gradient accumulation, a cluster that loses a worker to kill -9 and is
restarted with the same command resumes and ends with the weights of one uninterrupted process,
both workers logging the module draws of that process. TF_CONFIG errors are checked in-process.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from theseus import errors
from theseus.training import distribute

from test_classifier_e2e import make_task_dir
from test_resume_weights import TINY_CONFIG

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240
# Two predecessor layers, one module of one layer: a draw per update (a 4-layer model would only
# double the graph-building time of every process).
STAGE1 = ["--suc_layers=1", "--replacing_rate=0.5", "--gradient_accumulation_steps=2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_dir, minilm_dir):
  root = tmp_path_factory.mktemp("distributed")
  config = root / "bert_config.json"
  config.write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=2)))
  # One layer, for the runs that only start, fail or hang: what they check is not the model.
  (root / "one_layer.json").write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=1)))
  common = ["--task_name=mrpc", "--data_dir=" + make_task_dir(shared_data_dir, root, "mrpc"),
            "--bert_config_file=" + str(config),
            "--vocab_file=" + os.path.join(minilm_dir, "vocab.txt"), "--do_train",
            "--max_seq_length=64", "--train_batch_size=8", "--num_train_steps=6",
            "--save_checkpoints_steps=2", "--log_every_n_steps=1", "--seed=5",
            "--num_threads=1"]
  return {"root": root, "common": common, "runs": {}}


def _command(world, output_dir, extra, one_layer=False):
  common = world["common"]
  if one_layer:
    common = [a for a in common if not a.startswith("--bert_config_file=")] + [
        "--bert_config_file=" + str(world["root"] / "one_layer.json")]
  return [sys.executable, "run_classifier.py"] + common + extra + ["--output_dir=" +
                                                                    str(output_dir)]


def _run(command, num_workers=0):
  """Runs `command` (as num_workers local workers when > 0); returns its output."""
  if num_workers:
    command = [sys.executable, "launch_workers.py", "--num_workers=%d" % num_workers,
               "--timeout_s=%d" % (TIMEOUT_S - 10), "--"] + command
  proc = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=TIMEOUT_S)
  out = proc.stdout.decode("utf-8", "replace")
  assert proc.returncode == 0, out[-3000:]
  return out


def _trained(world, name, extra, num_workers=0):
  """The output dir of the run `name` (trained once per module) and its output."""
  if name not in world["runs"]:
    output_dir = world["root"] / name
    world["runs"][name] = (output_dir, _run(_command(world, output_dir, extra), num_workers))
  return world["runs"][name]


def _tensors(output_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(output_dir)))
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def _assert_same_weights(a_dir, b_dir, atol):
  a, b = _tensors(a_dir), _tensors(b_dir)
  assert sorted(a) == sorted(b)
  assert int(a["global_step"]) == int(b["global_step"]) == 6
  worst = max(float(np.max(np.abs(a[n].astype(np.float64) - b[n]))) for n in a)
  assert worst <= atol, worst
  return a


def test_two_workers_and_two_replicas_train_stage2_as_one_process(world):
  """Stage 2 (every variable trained, as in plain fine-tuning) on two workers, and on two
  mirrored CPU replicas in one process: both end with the one process's weights."""
  stage1_dir, _ = _trained(world, "stage1_one", STAGE1)
  stage2 = ["--suc_layers=1", "--finetune_suc",
            "--init_checkpoint=" + tf.train.latest_checkpoint(str(stage1_dir))]
  one_dir, _ = _trained(world, "stage2_one", stage2)
  two_dir, out = _trained(world, "stage2_two", stage2, num_workers=2)
  _assert_same_weights(one_dir, two_dir, atol=1e-6)
  # The chief alone writes checkpoints: worker 1 never says it saved one.
  assert "Saved checkpoint" in out and not re.search(r"\[worker 1\].*Saved checkpoint", out)
  mirrored_dir, _ = _trained(world, "stage2_mirrored", stage2 + [
      "--distribute=mirrored", "--mirrored_devices=/cpu:0,/cpu:1"])
  _assert_same_weights(one_dir, mirrored_dir, atol=1e-6)


def _kill_worker_after_checkpoint(command, output_dir, step):
  """Starts the cluster, kill -9s worker 1 once the chief has saved `step`; returns the output."""
  launcher = subprocess.Popen(
      [sys.executable, "launch_workers.py", "--num_workers=2", "--timeout_s=%d" % TIMEOUT_S,
       "--"] + command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  marker = os.path.join(str(output_dir), "model.ckpt-%d.index" % step)
  deadline = time.time() + TIMEOUT_S
  lines = []
  killed = False
  for raw in iter(launcher.stdout.readline, b""):
    line = raw.decode("utf-8", "replace")
    lines.append(line)
    if not killed and os.path.exists(marker):
      pids = subprocess.run(["pgrep", "-f", "output_dir=%s( |$)" % output_dir],
                            stdout=subprocess.PIPE).stdout.decode().split()
      workers = [p for p in pids if _worker_index(p) == 1]
      assert workers, "worker 1 not found"
      os.kill(int(workers[0]), signal.SIGKILL)
      killed = True
    assert time.time() < deadline, "".join(lines[-30:])
  launcher.wait(timeout=30)
  assert killed, "".join(lines[-30:])
  return launcher.returncode, "".join(lines)


def _worker_index(pid):
  """The TF_CONFIG task index of process `pid` (None if it has no TF_CONFIG)."""
  try:
    with open("/proc/%s/environ" % pid, "rb") as f:
      env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
  except OSError:
    return None
  if b"TF_CONFIG" not in env:
    return None
  return json.loads(env[b"TF_CONFIG"])["task"]["index"]


def _draws_by_step(output, worker=None):
  """step -> the module draw that the progress line of that update reports (of `worker`'s
  lines, prefixed by the launcher, when it is given)."""
  prefix = r"\[worker %d\] .*worker %d: " % (worker, worker) if worker is not None else ""
  return {int(step): draw for step, draw in
          re.findall(prefix + r"step (\d+)/\d+ .*drew (\d+)", output)}


def _stage1_cluster_killed_and_restarted(world):
  """Two workers on stage 1 with accumulation 2; worker 1 is killed -9 once the chief has saved
  step 2, then the same command is started again (once per module). Returns (the output dir,
  (the killed launch's exit code, its output, whether it wrote train_results.json), the
  restarted launch's output)."""
  if "stage1_killed" not in world["runs"]:
    output_dir = world["root"] / "stage1_killed"
    command = _command(world, output_dir, STAGE1)
    code, out = _kill_worker_after_checkpoint(command, output_dir, step=2)
    finished = os.path.exists(os.path.join(str(output_dir), "train_results.json"))
    world["runs"]["stage1_killed"] = (output_dir, (code, out, finished),
                                      _run(command, num_workers=2))
  return world["runs"]["stage1_killed"]


def test_a_stage1_cluster_restarted_after_kill_9_ends_as_one_process(world):
  """The cluster ends with the weights of one uninterrupted process (within 1e-6: the
  all-reduce sums in another order), and both workers drew, at every update after the resume,
  the modules the one process drew."""
  one_dir, one_out = _trained(world, "stage1_one", STAGE1)
  resumed_dir, (code, killed_out, finished), out = _stage1_cluster_killed_and_restarted(world)
  assert code != 0, killed_out[-2000:]
  assert "a worker exited with" in killed_out, killed_out[-2000:]
  assert not finished
  resumed_at = set()
  for worker in (0, 1):
    found = re.search(r"\[worker %d\].*Resumed from .*model\.ckpt-(2|4) at step (2|4)" % worker,
                      out)
    assert found, out[-3000:]
    resumed_at.add(int(found.group(2)))
  assert len(resumed_at) == 1, resumed_at
  weights = _assert_same_weights(one_dir, resumed_dir, atol=1e-6)
  assert any("/suc_layer_" in n for n in weights)
  one_draws = _draws_by_step(one_out)
  assert sorted(one_draws) == list(range(1, 7)), one_out[-2000:]
  assert len(set(one_draws.values())) > 1, one_draws  # the draw changes from update to update
  for worker in (0, 1):
    draws = _draws_by_step(out, worker)
    assert sorted(draws) == list(range(min(resumed_at) + 1, 7)), draws
    assert all(draws[step] == one_draws[step] for step in draws), (worker, draws, one_draws)


def _last_error_line(world, extra):
  proc = subprocess.run(_command(world, world["root"] / "bad", extra, True), cwd=REPO_ROOT,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
  assert proc.returncode == 2, proc.stderr.decode()[-2000:]
  return proc.stderr.decode().strip().splitlines()[-1]


BAD_TF_CONFIGS = [
    (None, "--distribute=multi_worker needs TF_CONFIG, e.g."),
    ("{not json", "TF_CONFIG is not {\"cluster\": {\"worker\": [...]}, \"task\": {...}} "
                  "(JSONDecodeError"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not {\"cluster\""),
    ('{"cluster": {"worker": ["a:1"]}, "task": []}', "TF_CONFIG is not {\"cluster\""),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG: only a \"worker\" job is supported (worker 0 is the chief), found ps"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG cluster.worker must be a list of \"host:port\", got ['a']"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG task.type must be \"worker\", got 'chief'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG task.index must be an integer in [0, 1), got 3"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": true}}',
     "TF_CONFIG task.index must be an integer in [0, 2), got True"),
]


@pytest.mark.parametrize("tf_config, message", BAD_TF_CONFIGS)
def test_a_bad_tf_config_is_one_line(tf_config, message):
  environ = {} if tf_config is None else {"TF_CONFIG": tf_config}
  with pytest.raises(errors.InputDataError) as e:
    distribute.read_tf_config(environ)
  assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_a_good_tf_config_gives_the_workers_and_this_index():
  tf_config = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
  assert distribute.read_tf_config({"TF_CONFIG": tf_config}) == (["a:1", "b:2"], 1)


def test_a_batch_the_replicas_cannot_share_is_one_line_on_the_command_line(world):
  assert _last_error_line(world, ["--distribute=mirrored", "--mirrored_devices=/cpu:0,/cpu:1",
                                  "--train_batch_size=3"]) == (
      "error: --train_batch_size=3 (the global batch) must be a multiple of the 2 replicas")


def test_a_worker_that_never_comes_up_is_one_line(world):
  """Worker 0 of a 2-worker TF_CONFIG whose worker 1 is never started: it says whom it waits
  for and stops with one line after --cluster_timeout_s, instead of hanging."""
  from launch_workers import free_ports  # pylint: disable=g-import-not-at-top
  addresses = ["127.0.0.1:%d" % p for p in free_ports(2)]
  env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": addresses},
                                               "task": {"type": "worker", "index": 0}}))
  proc = subprocess.run(_command(world, world["root"] / "alone", [
      "--distribute=multi_worker", "--cluster_timeout_s=3"], True), cwd=REPO_ROOT, env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
  err = proc.stderr.decode()
  assert proc.returncode == 1, err[-2000:]
  assert err.strip().splitlines()[-1] == (
      "error: worker 1 (%s) did not come up within 3 s (--cluster_timeout_s): start it with the "
      "same command and its TF_CONFIG (task.index 1), or check its address" % addresses[1])
  assert "Traceback" not in err


def _workers_of(launcher_pid):
  """The pids of the processes whose TF_CONFIG names a worker, started by `launcher_pid`."""
  pids = subprocess.run(["pgrep", "-P", str(launcher_pid)], stdout=subprocess.PIPE).stdout.split()
  return [int(p) for p in pids if _worker_index(p.decode()) is not None]


def _alive(pid):
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().split(")")[1].split()[0] != "Z"
  except OSError:
    return False


def _start_launcher(world, name):
  """A 2-worker cluster on a long run whose workers, once training, write nothing more (so only
  their launcher's fate can end them); returns (launcher, worker pids, output lines)."""
  command = _command(world, world["root"] / name, [
      "--num_train_steps=100000", "--save_checkpoints_steps=100000",
      "--log_every_n_steps=100000"], True)
  # As from a terminal: SIGINT at its default (pytest-xdist's workers ignore it, and children
  # inherit an ignored signal).
  launcher = subprocess.Popen([sys.executable, "launch_workers.py", "--num_workers=2", "--"] +
                              command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(
      line.decode("utf-8", "replace") for line in iter(launcher.stdout.readline, b"")))
  reader.daemon = True
  reader.start()
  deadline = time.time() + TIMEOUT_S
  while sum("parameters:" in line for line in list(lines)) < 2:
    assert time.time() < deadline and launcher.poll() is None, "".join(lines[-30:])
    time.sleep(0.2)
  return launcher, _workers_of(launcher.pid), lines


def _wait_gone(pids, seconds):
  deadline = time.time() + seconds
  while any(_alive(p) for p in pids) and time.time() < deadline:
    time.sleep(0.2)
  return [p for p in pids if _alive(p)]


def _kill_all(launcher, workers):
  """Whatever a failed assertion left running."""
  for pid in [launcher.pid] + workers:
    if _alive(pid):
      os.kill(pid, signal.SIGKILL)


def test_ctrl_c_and_kill_9_of_the_launcher_end_its_workers(world):
  launcher, workers, lines = _start_launcher(world, "interrupted")
  try:
    assert len(workers) == 2
    launcher.send_signal(signal.SIGINT)
    launcher.wait(timeout=60)
    time.sleep(1)
    out = "".join(lines)
    assert launcher.returncode == 130, out[-2000:]
    assert "launch_workers: interrupted; stopping the running workers" in out
    assert "Traceback" not in out.split("launch_workers: interrupted")[1], out[-2000:]
    assert not _wait_gone(workers, 30)
  finally:
    _kill_all(launcher, workers)
  launcher, workers, _ = _start_launcher(world, "orphaned")
  try:
    assert len(workers) == 2
    launcher.kill()  # SIGKILL: the launcher cannot stop anything itself
    launcher.wait()
    assert not _wait_gone(workers, 30), "workers outlived their launcher"
  finally:
    _kill_all(launcher, workers)


def _start_workers(world, output_dirs, extra, one_layer=False):
  """Worker i of a len(output_dirs)-worker cluster on output_dirs[i], started by hand (no
  launcher stops the others): returns the Popen objects (stderr piped)."""
  from launch_workers import free_ports  # pylint: disable=g-import-not-at-top
  addresses = ["127.0.0.1:%d" % p for p in free_ports(len(output_dirs))]
  workers = []
  for index, output_dir in enumerate(output_dirs):
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": addresses},
                                                 "task": {"type": "worker", "index": index}}))
    workers.append(subprocess.Popen(_command(world, output_dir, ["--distribute=multi_worker"] +
                                             extra, one_layer), cwd=REPO_ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
  return workers, addresses


def test_workers_that_restored_different_checkpoints_stop_with_one_line(world):
  """Each worker resumes from the newest checkpoint of its own --output_dir; two directories
  naming different steps must not train on as if they were one model."""
  import shutil  # pylint: disable=g-import-not-at-top
  source, _ = _trained(world, "stage1_one", STAGE1)
  dirs = []
  for name, step in (("restore_a", 2), ("restore_b", 4)):
    target = world["root"] / name
    shutil.copytree(str(source), str(target), ignore=shutil.ignore_patterns("best", "events*"))
    (target / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-%d"\n' % step)
    dirs.append(target)
  workers, _ = _start_workers(world, dirs, STAGE1 + ["--num_train_steps=8",
                                                     "--step_timeout_s=60"])
  for index, worker in enumerate(workers):
    err = worker.communicate(timeout=TIMEOUT_S)[1].decode()
    assert worker.returncode == 1, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: the workers do not hold the same model after restoring "
                           "%s/model.ckpt-%d: worker %d is at global_step %d" % (
                               dirs[index], 2 + 2 * index, index, 2 + 2 * index)), line
  assert not os.path.exists(os.path.join(str(dirs[0]), "model.ckpt-8.index"))


def _wait_for_checkpoint(marker, workers):
  """Until the chief wrote `marker`; fails with a worker's error if one ended before."""
  deadline = time.time() + TIMEOUT_S
  while not marker.exists():
    for index, worker in enumerate(workers):
      if worker.poll() is not None:
        raise AssertionError("worker %d ended (%d) before %s: %s" % (
            index, worker.returncode, marker, worker.communicate()[1].decode()[-3000:]))
    assert time.time() < deadline, "no %s after %d s" % (marker, TIMEOUT_S)
    time.sleep(0.2)


def _chief_error_after(world, name, fault, step_timeout_s=20):
  """Starts a 2-worker cluster on a long run, applies fault(worker 1's Popen) once the chief
  saved a checkpoint, and returns (the chief's last stderr line, the workers' addresses)."""
  workers, addresses = _start_workers(world, [world["root"] / (name + "_a"),
                                              world["root"] / (name + "_b")],
                                      ["--num_train_steps=100000",
                                       "--step_timeout_s=%d" % step_timeout_s], one_layer=True)
  try:
    _wait_for_checkpoint(world["root"] / (name + "_a") / "model.ckpt-2.index", workers)
    fault(workers[1])
    err = workers[0].communicate(timeout=120)[1].decode()
  finally:
    for worker in workers:
      worker.kill()
      worker.wait()
  assert workers[0].returncode == 1, err[-2000:]
  return err.strip().splitlines()[-1], addresses


def test_a_worker_killed_mid_run_is_named_by_the_others(world):
  line, addresses = _chief_error_after(world, "lost", lambda worker: worker.kill())
  assert re.match(r"error: worker 1 \(%s\) stopped answering during step \d+; this worker stops "
                  r"too\." % re.escape(addresses[1]), line), line


def test_a_worker_that_hangs_ends_the_step_after_the_step_timeout(world):
  # SIGSTOP: alive, answering connections, never stepping.
  # The chief waits out the whole timeout: a short one (a one-layer step takes well under 1 s).
  line, _ = _chief_error_after(world, "hung", lambda worker: os.kill(worker.pid, signal.SIGSTOP),
                               step_timeout_s=10)
  assert re.match(r"error: step \d+ of the cluster failed or waited more than 10 s "
                  r"\(--step_timeout_s\) for the other workers, which still answer: "
                  r"DeadlineExceededError: [^\n]*$", line), line
  assert "File " not in line, line


@pytest.mark.parametrize("gpus, num_workers, per_worker, expected", [
    ([], 2, -1, [None, None]),  # no GPU: the workers run on the CPU as they are
    (["0", "1"], 2, -1, ["0", "1"]),  # one GPU each, not every GPU each
    (["0", "1", "2", "3"], 2, -1, ["0,1", "2,3"]),
    (["4", "6"], 2, 1, ["4", "6"]),  # the ids CUDA_VISIBLE_DEVICES gave
    (["0", "1", "2", "3"], 2, 1, ["0", "1"]),
    (["0", "1"], 2, 0, ["-1", "-1"]),  # CPU workers
])
def test_launch_workers_gives_each_worker_its_own_gpus(gpus, num_workers, per_worker, expected):
  from launch_workers import worker_gpus  # pylint: disable=g-import-not-at-top
  assert worker_gpus(gpus, num_workers, per_worker) == expected


@pytest.mark.parametrize("gpus, num_workers, per_worker, message", [
    (["0"], 2, -1, "2 workers cannot have one GPU(s) each of the 1 visible (0)"),
    (["0", "1"], 2, 2, "2 workers cannot have 2 GPU(s) each of the 2 visible (0,1)"),
    ([], 2, 1, "--gpus_per_worker=1 but this machine shows no GPU"),
])
def test_launch_workers_refuses_a_gpu_split_that_cannot_be(gpus, num_workers, per_worker,
                                                           message):
  from launch_workers import worker_gpus  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError) as e:
    worker_gpus(gpus, num_workers, per_worker)
  assert str(e.value).startswith(message)


def test_launch_workers_reads_the_gpus_it_may_use():
  from launch_workers import visible_gpus  # pylint: disable=g-import-not-at-top
  assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
  assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
  assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_multi_worker_clusters_ask_for_nccl_between_gpus():
  options = tf.distribute.experimental.CollectiveCommunication
  assert distribute._communication(["gpu"]) == options.NCCL  # pylint: disable=protected-access
  assert distribute._communication([]) == options.RING  # pylint: disable=protected-access
  config = distribute.session_config(0, False)
  assert config.gpu_options.allow_growth and config.allow_soft_placement


def test_a_two_worker_checkpoint_is_resumed_by_one_process(world):
  """The cluster's checkpoint is an ordinary one: a single process goes on from it as it goes on
  from its own."""
  import shutil  # pylint: disable=g-import-not-at-top
  resumed = {}
  sources = {"stage1_two": _stage1_cluster_killed_and_restarted(world)[0],
             "stage1_one": _trained(world, "stage1_one", STAGE1)[0]}
  for name, source in sources.items():
    target = world["root"] / (name + "_to_8")
    shutil.copytree(str(source), str(target), ignore=shutil.ignore_patterns("events*"))
    out = _run(_command(world, target, STAGE1 + ["--num_train_steps=8"]))
    assert "Resumed from %s/model.ckpt-6 at step 6" % target in out
    resumed[name] = target
  a, b = _tensors(resumed["stage1_two"]), _tensors(resumed["stage1_one"])
  assert int(a["global_step"]) == int(b["global_step"]) == 8
  assert max(float(np.max(np.abs(a[n].astype(np.float64) - b[n]))) for n in a) <= 1e-6


def test_each_worker_parses_only_its_rows_of_the_same_global_batches(tmp_path):
  from theseus.training import input_pipeline  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  features = [{"input_ids": list(rng.randint(1, 99, size=rng.randint(3, 70))), "label_ids": [i],
               "example_index": [i]} for i in range(200)]
  path = str(tmp_path / "train.tfrecord")
  keys = ["input_ids", "label_ids", "example_index"]
  input_pipeline.write_feature_tfrecord(path, features, keys)

  def batches(shard_index, num_shards):
    with tf.Graph().as_default():
      d = input_pipeline.make_dataset(path, keys, [], 8, True, seed=3, skip_batches=2,
                                      shard_index=shard_index, num_shards=num_shards)
      batch = tf.compat.v1.data.make_one_shot_iterator(d).get_next()
      with tf.compat.v1.Session() as sess:
        return [sess.run(batch) for _ in range(5)]

  whole, first, second = batches(0, 1), batches(0, 2), batches(1, 2)
  for w, a, b in zip(whole, first, second):
    assert len(a["example_index"]) == len(b["example_index"]) == 4
    np.testing.assert_array_equal(w["example_index"], np.concatenate([a["example_index"],
                                                                      b["example_index"]]))
    for part, rows in ((a, slice(0, 4)), (b, slice(4, 8))):
      width = part["input_ids"].shape[1]  # padded to the longest of its own rows
      np.testing.assert_array_equal(part["input_ids"], w["input_ids"][rows, :width])
      np.testing.assert_array_equal(part["input_mask"], w["input_mask"][rows, :width])
      assert part["input_mask"].sum() == sum(len(features[i]["input_ids"])
                                             for i in part["example_index"][:, 0])
