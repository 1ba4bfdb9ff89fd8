"""What every service stands on and no service owns.

Settings base, logging, the migration runner, the Postgres pool, the broker connection and
topology declaration, a consumer's attachment to its queue (readiness, re-attachment), the
transactional outbox and its relay, dead-lettering, the health-and-metrics HTTP server and
signal handling. It knows no event and no service.
"""
