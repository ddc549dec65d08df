"""Read-only HTTP API over the projections; new events go to Kafka only."""
