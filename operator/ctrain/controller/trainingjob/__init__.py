"""The TrainingJob controller: `reconcile` (I/O) over `builders` (the Job) and `status` (pure)."""
