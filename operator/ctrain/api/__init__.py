"""ctrain's Kubernetes API: pydantic models of the CRDs, the single source of truth.

Import the kinds from here (or from `ctrain.api.v1alpha1`, the version's module):

    from ctrain.api import TrainingJob, TrainingJobSpec, ConditionType, Reason

`ctrain.api.crd` turns the models into CustomResourceDefinition YAML.
"""

from ctrain.api.v1alpha1 import *  # noqa: F403  (the version module owns __all__)
from ctrain.api.v1alpha1 import __all__ as __all__
