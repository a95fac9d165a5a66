"""The ModelDeployment controller: `reconcile` (I/O) over `builders` (Service, Deployments),
`plan` (the rollout state machine, pure) and `probe` (what the serving pods report)."""
