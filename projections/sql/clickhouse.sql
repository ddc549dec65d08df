-- Analytics in ClickHouse. {db} is replaced by the database name.
-- Every statement runs on ClickHouse 18.16 (Debian) and on current releases;
-- tests run the same file on chDB to keep it that way. Statements are split on ';'.

-- Fact table: one row per event of any type.
CREATE TABLE IF NOT EXISTS {db}.events (
    event_id     UUID,
    event_type   String,
    occurred_at  DateTime('UTC'),
    customer_id  String,            -- '' when the event has no customer
    source       String,
    topic        String,
    partition    UInt16,
    offset       UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;

-- Fact table: one row per order line; cancellations carry negative quantity and revenue.
CREATE TABLE IF NOT EXISTS {db}.order_lines (
    event_id     UUID,
    event_type   String,            -- 'order.placed' or 'order.cancelled'
    order_id     String,
    customer_id  String,            -- '' for guest orders
    country      String,
    occurred_at  DateTime('UTC'),
    day          Date,              -- UTC day of occurred_at
    line_number  UInt32,
    product_id   String,
    quantity     Int32,
    unit_price   Decimal(14, 3),
    revenue      Decimal(18, 3)     -- quantity * unit_price
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, event_id, line_number);

-- Aggregate: revenue and units by day, country and product. Rows with the same
-- key are summed when parts merge, so queries still sum() and GROUP BY.
CREATE TABLE IF NOT EXISTS {db}.sales_daily (
    day                Date,
    country            String,
    product_id         String,
    units_sold         Int64,
    units_cancelled    Int64,
    gross_revenue      Decimal(18, 3),
    cancelled_revenue  Decimal(18, 3),
    order_lines        UInt64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, country, product_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sales_daily_mv TO {db}.sales_daily AS
SELECT
    day,
    country,
    product_id,
    toInt64(sumIf(quantity, event_type = 'order.placed')) AS units_sold,
    toInt64(-sumIf(quantity, event_type = 'order.cancelled')) AS units_cancelled,
    toDecimal64(sumIf(revenue, event_type = 'order.placed'), 3) AS gross_revenue,
    toDecimal64(-sumIf(revenue, event_type = 'order.cancelled'), 3) AS cancelled_revenue,
    count() AS order_lines
FROM {db}.order_lines
GROUP BY day, country, product_id;

-- Highest offset applied per partition; the row with the largest offset wins on merge.
CREATE TABLE IF NOT EXISTS {db}.projection_offsets (
    `projection` String,         -- Backquoted because ClickHouse 26.x reads a bare PROJECTION here as a table projection.
    topic       String,
    partition   UInt16,
    offset      UInt64
) ENGINE = ReplacingMergeTree(offset)
ORDER BY (projection, topic, partition)
;

-- Fact table: one row per sentiment.scored event.
CREATE TABLE IF NOT EXISTS {db}.sentiment_scores (
    event_id           UUID,
    customer_id        String,
    product_id         String,            -- '' for texts about no product
    source_event_type  String,
    occurred_at        DateTime('UTC'),
    day                Date,
    score              Float64,
    label              String,
    confidence         Float64,
    model_name         String,
    model_version      String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, event_id);

-- Aggregate: sentiment by day, product and model version. Scores are summed as
-- integers in millionths, because float sums depend on the order parts merge in.
CREATE TABLE IF NOT EXISTS {db}.sentiment_daily (
    day            Date,
    product_id     String,
    model_version  String,
    texts          UInt64,
    score_micros   Int64,
    negative       UInt64,
    neutral        UInt64,
    positive       UInt64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, product_id, model_version);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sentiment_daily_mv TO {db}.sentiment_daily AS
SELECT
    day,
    product_id,
    model_version,
    count() AS texts,
    toInt64(sum(toInt64(round(score * 1000000)))) AS score_micros,
    countIf(label = 'negative') AS negative,
    countIf(label = 'neutral') AS neutral,
    countIf(label = 'positive') AS positive
FROM {db}.sentiment_scores
GROUP BY day, product_id, model_version
