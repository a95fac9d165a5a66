"""ctrain's Kubernetes API: pydantic models of the CRDs, the single source of truth.

Import the kinds from here (or from `ctrain.api.v1alpha1`, the version's module):

    from ctrain.api import TrainingJob, TrainingJobSpec, ConditionType, Reason

The tooling (`ctrain_dev.generate`) turns the models into CustomResourceDefinition YAML.
Beside the kinds: `ctrain.api.contracts` (the documents ctrain's processes exchange) and
`ctrain.api.common` (the time format, storage defaults, validation messages). The api is
the bottom layer: it imports nothing else of ctrain (`.importlinter`).
"""

from ctrain.api.v1alpha1 import *  # noqa: F403  (the version module owns __all__)
from ctrain.api.v1alpha1 import __all__ as __all__
