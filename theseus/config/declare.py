"""Declared settings: typed fields in groups by concern, each field its own command-line flag.

A group is a frozen dataclass whose fields are made with `setting`:

  @dataclasses.dataclass(frozen=True)
  class TrainingSettings:
    train_batch_size: int = setting(32, "The global batch.", minimum=1)

* `define_flags(groups)` defines an absl flag for every field of the groups (its name, type,
  default, help and, for `choices`, an enum);
* `from_flags(group, flag_values)` builds a group from the flags of its own fields only;
* `from_values(group, values)` builds one from a dict (defaults for the fields it lacks);
* `check_ranges(group)` checks every numeric field against its declared range (floats must also
  be finite), raising InputDataError with one line: `--name must be in [0, 1], got 1.5`.

Imports no TensorFlow; defines no flag when imported.
"""

import dataclasses
import math
import typing

from absl import flags

from theseus.errors import InputDataError

_RANGE_KEYS = ("minimum", "maximum", "above", "below")


def setting(default, help_text, minimum=None, maximum=None, above=None, below=None,
            choices=None):
  """A declared field: its default, help, range (minimum <= v <= maximum, above < v < below)
  and, for a string, its allowed values."""
  metadata = {"help": help_text, "minimum": minimum, "maximum": maximum, "above": above,
              "below": below, "choices": tuple(choices) if choices else None}
  if isinstance(default, list):
    default = tuple(default)
  return dataclasses.field(default=default, metadata=metadata)


def _kind(field):
  """"bool", "int", "float", "str" or "list" (a tuple of strings) of a declared field."""
  kind = field.type
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
  if typing.get_origin(kind) in (tuple, list) or kind in (tuple, list):
    return "list"
  return {bool: "bool", int: "int", float: "float", str: "str"}[kind]


def define_flags(groups, flag_values=flags.FLAGS):
  """Defines a flag for every field of `groups` (a flag already defined is left as it is: two
  run scripts imported in one process share their common flags)."""
  definers = {"bool": flags.DEFINE_bool, "int": flags.DEFINE_integer,
              "float": flags.DEFINE_float, "str": flags.DEFINE_string,
              "list": flags.DEFINE_list}
  for group in groups:
    for field in dataclasses.fields(group):
      if field.name in flag_values:
        continue
      meta = field.metadata
      default = field.default
      if meta.get("choices"):
        flags.DEFINE_enum(field.name, default, list(meta["choices"]), meta["help"],
                          flag_values=flag_values)
        continue
      if _kind(field) == "list":
        default = list(default)
      definers[_kind(field)](field.name, default, meta["help"], flag_values=flag_values)


def _converted(field, value):
  if value is not None and _kind(field) == "list":
    return tuple(value)
  if value is not None and _kind(field) == "float":
    return float(value)
  return value


def from_flags(group, flag_values=flags.FLAGS):
  """The group built from the values of its own flags."""
  return group(**{f.name: _converted(f, flag_values[f.name].value)
                  for f in dataclasses.fields(group)})


def from_values(group, values):
  """The group with the entries of `values` that are its fields (defaults for the others)."""
  return group(**{f.name: _converted(f, values[f.name]) for f in dataclasses.fields(group)
                  if f.name in values})


def field_names(group):
  return [f.name for f in dataclasses.fields(group)]


def _bounds_text(meta):
  low = "[%s" % _number(meta["minimum"]) if meta["minimum"] is not None else (
      "(%s" % _number(meta["above"]) if meta["above"] is not None else None)
  high = "%s]" % _number(meta["maximum"]) if meta["maximum"] is not None else (
      "%s)" % _number(meta["below"]) if meta["below"] is not None else None)
  if low and high:
    return "in %s, %s" % (low, high)
  if low:
    return (">= " if low[0] == "[" else "> ") + low[1:]
  if high:
    return ("<= " if high[-1] == "]" else "< ") + high[:-1]
  return None


def _number(value):
  return "%g" % value


def _in_range(value, meta):
  return ((meta["minimum"] is None or value >= meta["minimum"]) and
          (meta["maximum"] is None or value <= meta["maximum"]) and
          (meta["above"] is None or value > meta["above"]) and
          (meta["below"] is None or value < meta["below"]))


def check_ranges(settings):
  """Raises InputDataError (`--name must be ..., got v`) for a value outside its declared range;
  a float must be finite too."""
  for field in dataclasses.fields(settings):
    kind = _kind(field)
    if kind not in ("int", "float"):
      continue
    value = getattr(settings, field.name)
    meta = field.metadata
    bounds = _bounds_text(meta)
    finite = kind != "float" or math.isfinite(value)
    if finite and (bounds is None or _in_range(value, meta)):
      continue
    if kind == "float" and (bounds is None or bounds[0] in "<>"):
      expected = "a finite number" + (" " + bounds if bounds else "")
    else:
      expected = bounds
    raise InputDataError("--%s must be %s, got %r" % (field.name, expected, value))
