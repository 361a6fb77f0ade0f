"""The shape of the code: the package's layers, no import cycles, module and function sizes, the
faces at the top level, and no settings object filled from every flag.

Layers, lowest first (a module imports modules of its own layer or lower; never higher):
  0 foundations (no TensorFlow): errors, files, names, stage, cli, config.declare, config.groups
  1 the model and the tokenizer: modeling_theseus (its keyed dropout and LayerNorm forms),
    tokenization
  2 pieces of a run: training.{optimizer, distribute, input_pipeline, checkpoints}, tasks.base,
    distillation.losses, config.checks
  3 training.{update, evaluation, keeper}
  4 optimization_theseus (google-research/bert's face over the update), distillation.teacher
  5 training.trainer
  6 the tasks (their folders and the registry; theseus/tasks/__init__.py holds only a docstring)
  7 export (writer, TFLite, serving)
  8 conversion
  9 app.runner
  10 the command lines: run_*.py, predict.py, convert_checkpoint.py, launch_workers.py
"""

import ast
import os
import subprocess
import sys

from conftest import REPO_ROOT

LAYERS = [
    (0, ("theseus", "theseus.errors", "theseus.files", "theseus.names", "theseus.stage",
         "theseus.cli", "theseus.config", "theseus.config.declare", "theseus.config.groups")),
    (1, ("modeling_theseus", "theseus.dropout", "theseus.layer_norm", "tokenization")),
    (2, ("theseus.training", "theseus.training.optimizer", "theseus.training.distribute",
         "theseus.training.input_pipeline", "theseus.training.checkpoints", "theseus.tasks",
         "theseus.tasks.base",
         "theseus.distillation", "theseus.distillation.losses", "theseus.config.checks")),
    (3, ("theseus.training.update", "theseus.training.evaluation", "theseus.training.keeper")),
    (4, ("optimization_theseus", "theseus.distillation.teacher")),
    (5, ("theseus.training.trainer",)),
    (6, ("theseus.tasks.registry", "theseus.tasks.classifier", "theseus.tasks.ner_mrc",
         "theseus.tasks.squad")),
    (7, ("theseus.export",)),
    (8, ("theseus.conversion",)),
    (9, ("theseus.app",)),
    (10, ("run_classifier", "run_ner_mrc", "run_squad", "predict", "convert_checkpoint",
          "launch_workers")),
]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
MAX_TOP_LEVEL_FILES = 10
# modeling_theseus.py stays whole (it is google-research/bert's modeling.py in size), no longer
# than it was before the package.
MODELING_MAX_LINES = 1097


def _layer(module):
  """The layer of a module: the most specific prefix listed in LAYERS."""
  best, best_length = None, -1
  for layer, prefixes in LAYERS:
    for prefix in prefixes:
      if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
        best, best_length = layer, len(prefix)
  return best


def _library_files():
  """{module name: path} of every library module and face (not tests, benchmarks, scripts)."""
  found = {}
  for name in os.listdir(REPO_ROOT):
    if name.endswith(".py"):
      found[name[:-3]] = os.path.join(REPO_ROOT, name)
  for dirpath, _, names in os.walk(os.path.join(REPO_ROOT, "theseus")):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(dirpath, name)
        module = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
        found[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
  return found


def _imports(path, modules):
  """The project modules `path` imports (at any depth of the file)."""
  found = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.Import):
      candidates = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from package import module` imports the module; `from module import name`, the module.
      candidates = ["%s.%s" % (node.module, a.name) if "%s.%s" % (node.module, a.name) in modules
                    else node.module for a in node.names]
    else:
      continue
    found.update(c for c in candidates if c in modules)
  return found


def test_every_import_goes_to_the_same_or_a_lower_layer_and_there_is_no_cycle():
  modules = _library_files()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  for module in modules:
    assert _layer(module) is not None, "%s is in no layer of this test's LAYERS" % module
  upward = ["%s (%d) imports %s (%d)" % (m, _layer(m), i, _layer(i))
            for m, imports in sorted(graph.items()) for i in sorted(imports)
            if _layer(i) > _layer(m)]
  assert not upward, upward
  visiting, done = set(), set()

  def visit(module, path):
    assert module not in visiting, "import cycle: " + " -> ".join(path + [module])
    if module in done:
      return
    visiting.add(module)
    for imported in sorted(graph[module]):
      visit(imported, path + [module])
    visiting.discard(module)
    done.add(module)

  for module in sorted(graph):
    visit(module, [])


def test_module_and_function_sizes():
  too_long = []
  for module, path in sorted(_library_files().items()):
    text = open(path, encoding="utf-8").read()
    limit = MODELING_MAX_LINES if module == "modeling_theseus" else MAX_MODULE_LINES
    if text.count("\n") > limit:
      too_long.append("%s: %d lines" % (module, text.count("\n")))
    for node in ast.walk(ast.parse(text)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
          too_long.append("%s.%s: %d lines" % (module, node.name, length))
  assert not too_long, too_long


def test_the_top_level_holds_only_the_faces():
  top = sorted(n for n in os.listdir(REPO_ROOT) if n.endswith(".py"))
  assert len(top) <= MAX_TOP_LEVEL_FILES, top
  for name in top:
    assert _layer(name[:-3]) in (1, 4, 10), name


def test_no_settings_object_is_filled_from_every_flag():
  """Settings are declared groups; nothing copies all flags into one object."""
  for module, path in sorted(_library_files().items()):
    text = open(path, encoding="utf-8").read()
    for pattern in ("for name in flag_values", "__dict__.update(values)",
                    "flag_values[name].value for name in"):
      assert pattern not in text, (module, pattern)


def test_the_tokenizer_and_the_converter_load_no_tensorflow():
  code = ("import sys; import tokenization, convert_checkpoint; "
          "from theseus.config import groups; "
          "print('tensorflow' in sys.modules)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "False"
