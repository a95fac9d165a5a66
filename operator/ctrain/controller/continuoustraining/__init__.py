"""The ContinuousTraining controller: `reconcile` (I/O) over `triggers` (when to start a run)
and `builders` (runs, history and status), both pure."""
