"""Customer Insight and Enhancement platform: shared settings, Kafka plumbing, importers and the CLI."""
