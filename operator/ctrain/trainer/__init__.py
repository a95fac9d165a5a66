"""The trainer: what `ctrain train` runs inside a training pod.

Small modules, one step each: `data` (read and fingerprint), `validation`
(expectations), `features` (numeric/categorical and the numpy matrix), `estimators`
(allowlisted estimator and pipeline), `evaluate` (split, metrics, gates), `compare`
(champion on the same holdout, the verdict), `reference` (drift statistics), `run`
(the orchestration) and `termination` (the message the operator reads).
"""

from ctrain.trainer.errors import TrainerError
from ctrain.trainer.run import TrainerContext, parse_spec, run, train

__all__ = ["TrainerContext", "TrainerError", "parse_spec", "run", "train"]
