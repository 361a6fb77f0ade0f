"""The tasks: one folder each (classifier/, ner_mrc/), the interface they implement (base.py) and
the registry that names them (registry.py)."""
