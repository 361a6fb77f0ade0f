"""Which ops of a graph are pinned to a GPU without a GPU kernel: found without a GPU.

TensorFlow's pip build registers its GPU kernels whether or not a GPU is present, so a graph
built under a strategy over "/gpu:0", "/gpu:1" (built, never run) tells, op by op, whether its
first GPU run would find a kernel for every op it pins to a GPU. Sessions also run with soft
placement (distribute.session_config), which moves such an op to the CPU instead of failing;
this check keeps the graph from needing that (an op moved to the host every step costs a copy).
"""

from tensorflow.python.framework import kernels

_GPU_DEVICE_TYPES = ("GPU", "DEFAULT")  # DEFAULT kernels run on any device
_kernels_cache = {}
_verdict_cache = {}


def _kernels(op_type):
  """(constrained attribute names, [{name: allowed type enums}] one per GPU kernel) of op_type."""
  if op_type not in _kernels_cache:
    kernels_allowed = []
    for kernel in kernels.get_registered_kernels_for_op(op_type).kernel:
      if kernel.device_type not in _GPU_DEVICE_TYPES:
        continue
      allowed = {c.name: frozenset(c.allowed_values.list.type) for c in kernel.constraint
                 if c.allowed_values.list.type}
      kernels_allowed.append(allowed)
    names = sorted({name for allowed in kernels_allowed for name in allowed})
    _kernels_cache[op_type] = (names, kernels_allowed)
  return _kernels_cache[op_type]


def _type_attrs(op, names):
  """{name: tuple of type enums} of the op's attributes `names` (None when the op lacks one)."""
  values = {}
  for name in names:
    try:
      value = op.get_attr(name)
    except ValueError:
      values[name] = None
      continue
    value = value if isinstance(value, list) else [value]
    values[name] = tuple(getattr(v, "as_datatype_enum", v) for v in value)
  return values


def has_gpu_kernel(op):
  """Whether a GPU (or any-device) kernel was registered for the op's type attributes."""
  names, kernels_allowed = _kernels(op.type)
  values = _type_attrs(op, names)
  key = (op.type, tuple(values[name] for name in names))
  if key not in _verdict_cache:
    _verdict_cache[key] = any(
        all(values[name] is not None and all(v in allowed[name] for v in values[name])
            for name in allowed)
        for allowed in kernels_allowed)
  return _verdict_cache[key]


def ops_without_gpu_kernel(graph):
  """[(op name, op type, device)] of the ops `graph` pins to a GPU that have no GPU kernel for
  their types."""
  missing = []
  for op in graph.get_operations():
    if "GPU" not in op.device.upper():
      continue
    if not has_gpu_kernel(op):
      missing.append((op.name, op.type, op.device))
  return missing
