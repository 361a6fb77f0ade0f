"""Which ops of a graph are pinned to a GPU without a GPU kernel: found without a GPU.

TensorFlow's pip build registers its GPU kernels whether or not a GPU is present, so a graph
built under a strategy over "/gpu:0", "/gpu:1" (built, never run) tells, op by op, whether its
first GPU run would find a kernel for every op it pins to a GPU. Sessions also run with soft
placement (distribute.session_config), which moves such an op to the CPU instead of failing;
this check keeps the graph from needing that (an op moved to the host every step costs a copy).
"""

from tensorflow.python.framework import kernels

_GPU_DEVICE_TYPES = ("GPU", "DEFAULT")  # DEFAULT kernels run on any device
_cache = {}


def _kernels(op_type):
  if op_type not in _cache:
    _cache[op_type] = [k for k in kernels.get_registered_kernels_for_op(op_type).kernel
                       if k.device_type in _GPU_DEVICE_TYPES]
  return _cache[op_type]


def _satisfies(op, kernel):
  """Whether the op's type attributes are among those the kernel was registered for."""
  for constraint in kernel.constraint:
    allowed = list(constraint.allowed_values.list.type)
    if not allowed:
      continue
    try:
      value = op.get_attr(constraint.name)
    except ValueError:
      return False
    values = value if isinstance(value, list) else [value]
    if any(getattr(v, "as_datatype_enum", v) not in allowed for v in values):
      return False
  return True


def has_gpu_kernel(op):
  return any(_satisfies(op, kernel) for kernel in _kernels(op.type))


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
