"""What a TrainingJob may ask for: the estimator allowlist and the metric names.

Only scikit-learn estimators on this list can be trained: the trainer imports the class
by its path, so the list is also a security boundary (no arbitrary imports from a CR).
The trainer and the CRD's `enum`s both read these constants.
"""

from enum import StrEnum

__all__ = [
    "DEFAULT_METRICS",
    "ESTIMATORS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_TASKS",
    "Metric",
    "Task",
    "higher_is_better",
]


class Task(StrEnum):
    """The kind of supervised learning an estimator does."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


_C, _R = Task.CLASSIFICATION, Task.REGRESSION

# Full import path -> task. The trainer imports `module.Class` only from this mapping.
ESTIMATORS: dict[str, Task] = {
    "sklearn.linear_model.LogisticRegression": _C,
    "sklearn.linear_model.RidgeClassifier": _C,
    "sklearn.linear_model.SGDClassifier": _C,
    "sklearn.linear_model.LinearRegression": _R,
    "sklearn.linear_model.Ridge": _R,
    "sklearn.linear_model.Lasso": _R,
    "sklearn.linear_model.ElasticNet": _R,
    "sklearn.linear_model.SGDRegressor": _R,
    "sklearn.ensemble.RandomForestClassifier": _C,
    "sklearn.ensemble.RandomForestRegressor": _R,
    "sklearn.ensemble.GradientBoostingClassifier": _C,
    "sklearn.ensemble.GradientBoostingRegressor": _R,
    "sklearn.ensemble.HistGradientBoostingClassifier": _C,
    "sklearn.ensemble.HistGradientBoostingRegressor": _R,
    "sklearn.ensemble.ExtraTreesClassifier": _C,
    "sklearn.ensemble.ExtraTreesRegressor": _R,
    "sklearn.tree.DecisionTreeClassifier": _C,
    "sklearn.tree.DecisionTreeRegressor": _R,
    "sklearn.neighbors.KNeighborsClassifier": _C,
    "sklearn.neighbors.KNeighborsRegressor": _R,
    "sklearn.svm.SVC": _C,
    "sklearn.svm.SVR": _R,
    "sklearn.svm.LinearSVC": _C,
    "sklearn.naive_bayes.GaussianNB": _C,
}


class Metric(StrEnum):
    """Evaluation metrics by name; the trainer computes them on the held-out test split."""

    # Classification. roc_auc_ovr and log_loss need predict_proba (not RidgeClassifier,
    # LinearSVC, or SVC without probability=True).
    ACCURACY = "accuracy"
    BALANCED_ACCURACY = "balanced_accuracy"
    F1_MACRO = "f1_macro"
    F1_WEIGHTED = "f1_weighted"
    PRECISION_MACRO = "precision_macro"
    RECALL_MACRO = "recall_macro"
    ROC_AUC_OVR = "roc_auc_ovr"
    LOG_LOSS = "log_loss"
    # Regression
    R2 = "r2"
    MAE = "mae"
    MSE = "mse"
    RMSE = "rmse"
    MAPE = "mape"


METRICS: tuple[str, ...] = tuple(metric.value for metric in Metric)

# Which task each metric applies to.
METRIC_TASKS: dict[Metric, Task] = {
    Metric.ACCURACY: _C,
    Metric.BALANCED_ACCURACY: _C,
    Metric.F1_MACRO: _C,
    Metric.F1_WEIGHTED: _C,
    Metric.PRECISION_MACRO: _C,
    Metric.RECALL_MACRO: _C,
    Metric.ROC_AUC_OVR: _C,
    Metric.LOG_LOSS: _C,
    Metric.R2: _R,
    Metric.MAE: _R,
    Metric.MSE: _R,
    Metric.RMSE: _R,
    Metric.MAPE: _R,
}

# Scores: a larger value is a better model. Every other metric is an error or a loss
# (log_loss, mae, mse, rmse, mape): smaller is better.
HIGHER_IS_BETTER: frozenset[Metric] = frozenset(
    {
        Metric.ACCURACY,
        Metric.BALANCED_ACCURACY,
        Metric.F1_MACRO,
        Metric.F1_WEIGHTED,
        Metric.PRECISION_MACRO,
        Metric.RECALL_MACRO,
        Metric.ROC_AUC_OVR,
        Metric.R2,
    }
)

# Metrics computed when a TrainingJob lists none; the first is the key metric.
DEFAULT_METRICS: dict[Task, tuple[Metric, ...]] = {
    Task.CLASSIFICATION: (Metric.ACCURACY, Metric.F1_MACRO),
    Task.REGRESSION: (Metric.R2, Metric.RMSE, Metric.MAE),
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` means a better model."""
    return Metric(metric) in HIGHER_IS_BETTER
