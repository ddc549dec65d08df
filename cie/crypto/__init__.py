"""Encryption of personal data: the master key, per-customer data keys and field ciphertexts."""
