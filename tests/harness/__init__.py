"""What the tests, the chaos campaign and the benchmarks share to run the real services.

| module      | what it gives                                                                  |
|-------------|--------------------------------------------------------------------------------|
| `ports`     | loopback ports held from the moment they are picked until the server binds them |
| `processes` | a console script as a subprocess with a log of its own; one-shot commands      |
| `scratch`   | schema and broker names of one's own, declared, and removed afterwards          |
| `stack`     | one integration test's share of Postgres and RabbitMQ (the ``stack`` fixture)   |
"""
