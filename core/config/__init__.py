"""Configuration: every knob of a run as a frozen, typed value, and the files that hold them.

``from core.config import MetricsConfig`` is how the engine reads a config; the package's modules:

- :mod:`core.config.schema`: the config dataclasses and their allowed values (re-exported here);
- :mod:`core.config.checks`: the validation helpers every ``__post_init__`` calls;
- :mod:`core.config.tables`: configs to and from tables (an experiment's TOML, a manifest's JSON);
- :mod:`core.config.file`: reading an experiment TOML file into an ``ExperimentConfig``;
- :mod:`core.config.reference`: the complete, commented experiment file (``python -m core config --example``).
"""
from core.config.schema import *  # the package exports the schema's public names (its __all__)
from core.config.schema import __all__ as __all__
