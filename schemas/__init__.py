"""Event contracts: Avro schemas under avro/, their registry, the single-object codec and the pydantic models."""
