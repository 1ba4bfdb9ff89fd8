"""A three-node RabbitMQ cluster on this machine, beside the default broker, for cluster tests."""
