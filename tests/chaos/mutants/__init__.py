"""Test-only builds that each lack one delivery guarantee, for the campaign's mutation checks.

``python -m tests.chaos.mutants NAME SCRIPT ARGS…`` patches one function of the product in
this process, then runs the console script ``SCRIPT`` (``recalculator``, ``job-ledger``,
``notifier``) with ``ARGS``, exactly as its entry point would. Nothing here is reachable from
the product: the patching lives in the tests, and a stack runs a service this way only when
a mutation check asks for it (``tests/chaos/test_mutation_checks.py``).

- ``relay-marks-unconfirmed``: the outbox relay counts every publish as confirmed, so a row
  whose publish failed or was never confirmed is marked sent (``chassis.outbox``).
- ``ledger-acks-before-commit``: the ledger acks a batch as it arrives, before storing it
  (``chassis.batch_consumer``, which the ledger's consumer runs on).
- ``notifier-sends-before-recording``: the notifier emails an outcome as the event arrives,
  before its delivery record is written, and every email goes without its
  ``Idempotency-Key`` (``notifier.consumer``, ``notifier.email_resend``).
- ``stays-on-lost-node``: a broker connection given several nodes keeps reconnecting to the
  one it lost (``chassis.failover``); the cluster scenarios' consumers never come back.
"""
