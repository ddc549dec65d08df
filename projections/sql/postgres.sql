-- Read models in PostgreSQL. Run with search_path set to the projection schema,
-- so that a replay can build the same tables in a second schema.
-- Every statement is idempotent: the worker and the API run this file at start.

-- Customer profile: one row per customer, all totals in event time.
CREATE TABLE IF NOT EXISTS customers (
    customer_id          text PRIMARY KEY,
    country              text,
    country_updated_at   timestamptz,          -- event time of the event that set country
    registered_at        timestamptz,
    traits               jsonb NOT NULL DEFAULT '{}'::jsonb,  -- trait name -> base64 of the sealed value (cie/crypto/fields.py)
    first_order_at       timestamptz,
    last_order_at        timestamptz,
    order_count          integer NOT NULL DEFAULT 0,
    cancellation_count   integer NOT NULL DEFAULT 0,
    units_purchased      bigint NOT NULL DEFAULT 0,
    units_cancelled      bigint NOT NULL DEFAULT 0,
    gross_revenue        numeric(18, 3) NOT NULL DEFAULT 0,
    cancelled_revenue    numeric(18, 3) NOT NULL DEFAULT 0,
    net_revenue          numeric(18, 3) GENERATED ALWAYS AS (gross_revenue - cancelled_revenue) STORED,
    average_order_value  numeric(18, 3) GENERATED ALWAYS AS (
        CASE WHEN order_count > 0 THEN round((gross_revenue - cancelled_revenue) / order_count, 3) END
    ) STORED,
    distinct_products    integer NOT NULL DEFAULT 0,
    last_event_at        timestamptz,
    erased_at            timestamptz           -- occurred_at of the customer.erased event; traits are then empty
);
-- Tables created before erasure existed.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS erased_at timestamptz;
CREATE INDEX IF NOT EXISTS customers_country_idx ON customers (country, customer_id);
CREATE INDEX IF NOT EXISTS customers_net_revenue_idx ON customers (net_revenue DESC, customer_id);

-- What each customer bought, per product; feeds distinct_products and recommendations.
CREATE TABLE IF NOT EXISTS customer_products (
    customer_id        text NOT NULL,
    product_id         text NOT NULL,
    order_count        integer NOT NULL DEFAULT 0,
    units_purchased    bigint NOT NULL DEFAULT 0,
    units_cancelled    bigint NOT NULL DEFAULT 0,
    first_purchased_at timestamptz,
    last_purchased_at  timestamptz,
    PRIMARY KEY (customer_id, product_id)
);

-- Product catalogue: the version with the latest event time wins.
CREATE TABLE IF NOT EXISTS products (
    product_id   text PRIMARY KEY,
    description  text,
    unit_price   numeric(14, 3),
    currency     text NOT NULL,
    is_service   boolean NOT NULL,
    updated_at   timestamptz NOT NULL          -- occurred_at of the version held
);

-- Idempotency: an event id is inserted here in the same transaction that applies
-- the event, so a redelivered or republished event finds its id and is skipped.
CREATE TABLE IF NOT EXISTS applied_events (
    projection  text NOT NULL,
    event_id    uuid NOT NULL,
    PRIMARY KEY (projection, event_id)
);

-- Highest offset applied per projection and partition, written in the same
-- transaction as the projection rows; consumer lag is measured against it.
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);

-- Sentiment per customer and model version: a time-decayed mean in event time.
-- Scores of different model versions are never mixed in one row.
CREATE TABLE IF NOT EXISTS customer_sentiment (
    customer_id       text NOT NULL,
    model_version     text NOT NULL,
    anchor_at         timestamptz NOT NULL,        -- latest occurred_at applied; the sums below are decayed to it
    weighted_sum      double precision NOT NULL,   -- sum of score * 2^(-(anchor_at - occurred_at) / half-life)
    weight_total      double precision NOT NULL,   -- sum of 2^(-(anchor_at - occurred_at) / half-life)
    scored_count      integer NOT NULL,
    negative_count    integer NOT NULL,
    last_negative_at  timestamptz,
    PRIMARY KEY (customer_id, model_version)
);

-- Every scored text, for the most recent texts and the 30-day trend.
CREATE TABLE IF NOT EXISTS scored_texts (
    event_id           uuid PRIMARY KEY,           -- id of the sentiment.scored event
    customer_id        text NOT NULL,
    model_name         text NOT NULL,
    model_version      text NOT NULL,
    source_event_id    uuid NOT NULL,
    source_event_type  text NOT NULL,
    product_id         text,
    occurred_at        timestamptz NOT NULL,
    score              double precision NOT NULL,
    label              text NOT NULL,
    confidence         double precision NOT NULL,
    encrypted_excerpt  bytea                       -- sealed excerpt; NULL once the customer is erased
);
-- Tables created before encryption held the excerpt in clear: drop it. Rebuild the
-- projections (docs/architecture.md, "Replay") to fill encrypted_excerpt of old rows.
ALTER TABLE scored_texts DROP COLUMN IF EXISTS excerpt;
ALTER TABLE scored_texts ADD COLUMN IF NOT EXISTS encrypted_excerpt bytea;
CREATE INDEX IF NOT EXISTS scored_texts_customer_idx ON scored_texts (customer_id, model_version, occurred_at DESC);
