"""Erasure in the PostgreSQL projections: destroy the customers' data keys and clear their personal fields.

Runs inside the profile projection's batch transaction, so the key destruction,
the cleared rows and the claimed event ids commit together. The key table is
always the live schema's, so a replay destroys the same keys again, which
changes nothing. The cleared tables are those of the connection's search_path.

What stays: customer ids, countries, order counts, units, revenue, product
rows, sentiment scores, labels and their means. What goes: the wrapped data key,
every trait and every scored text's excerpt.
"""

import psycopg

from cie.crypto.keyring import destroy_keys


def erase_customers(cursor: psycopg.Cursor, key_schema: str, erasures: list[dict]) -> None:
    """Apply customer.erased events: destroy the keys, then clear traits and excerpts of those customers."""
    if not erasures:
        return

    # 1. Destroy the data keys; from now on no process can decrypt or create a key for them.
    #    A batch may hold several erasures of one customer, and one statement may touch a row only once.
    earliest = {}
    for erasure in sorted(erasures, key=lambda e: (e["occurred_at"], str(e["event_id"]))):
        earliest.setdefault(erasure["customer_id"], erasure)
    destroy_keys(cursor, key_schema, [(e["customer_id"], e["occurred_at"], str(e["event_id"])) for e in earliest.values()])

    # 2. Clear what the projections hold in sealed form. The ciphertext is already
    #    unreadable, and clearing it makes a rebuilt projection (which never stores it) compare equal.
    customer_ids = sorted({e["customer_id"] for e in erasures})
    cursor.execute("UPDATE customers SET traits = '{}'::jsonb WHERE customer_id = ANY(%s)", (customer_ids,))
    cursor.execute("UPDATE scored_texts SET encrypted_excerpt = NULL WHERE customer_id = ANY(%s)", (customer_ids,))
