"""The operator's access to S3, in one place: `clients` (one client per endpoint, short
timeouts, the door every request goes through), `facts` (what objects follow: a model
reference, a dataset's identity, and how each is read again with a conditional request)
and `watch` (facts read once per interval for all their followers, per endpoint).

The product's S3 client (`ctrain.storage`) and model registry (`ctrain.registry`) sit
below; this package adds what only a long-running operator needs.
"""
