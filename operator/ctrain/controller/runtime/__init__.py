"""The controller runtime: how every kind is reconciled, in one place.

- `engine`: per-kind work queues and worker threads, one startup, the routing of watch
  events (`Runtime.observe` only records and enqueues), per-pass deadlines, error
  handling (a `Rejected` object is reported in its status, anything else is retried with
  the object's own jittered, capped, exponential backoff);
- `queue`: the work queue (a key is never processed twice at once, a key added while it
  is processed runs again after, each key has one scheduled wake-up) and the backoff;
- `store`: the latest body of every watched object, indexed by owner, and who follows
  whom; `owners`: how a child names its owner;
- `context`: the one object every pass gets (API wrapper, caches, storage watch, clock,
  per-object memory forgotten on deletion);
- `status`: status models serialised and written one way, Events.
"""
