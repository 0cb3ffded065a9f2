-- TAG_VALUES for the PostgreSQL sink (SINK=postgres, POSTGRES_URL=postgres://...).
--   psql "$POSTGRES_URL" -f sql/postgres/create_tag_values.sql
-- Same columns, keys and limits as sql/oracle/create_tag_values.sql: the primary key makes
-- every write idempotent (INSERT ... ON CONFLICT DO NOTHING), and the CHECK constraints refuse
-- what Oracle would, so such rows go to a rejected file on every sink alike. Plain SQL only,
-- so PostgreSQL-compatible scale-out databases accept it too.
CREATE TABLE IF NOT EXISTS TAG_VALUES (
    timestamp   TIMESTAMP(6)     NOT NULL,
    plc_code    VARCHAR(50)      NOT NULL CHECK (octet_length(plc_code) BETWEEN 1 AND 50),
    tag_address VARCHAR(100)     NOT NULL CHECK (octet_length(tag_address) BETWEEN 1 AND 100),
    tag_value   DOUBLE PRECISION          CHECK (tag_value > -1e126 AND tag_value < 1e126),
    quality     VARCHAR(20)      NOT NULL CHECK (quality IN ('GOOD', 'BAD', 'UNCERTAIN')),
    -- UTC, as the service's timestamps are by default. With TIMESTAMP_ZONE=local use
    --   inserted_at TIMESTAMP(6) NOT NULL DEFAULT LOCALTIMESTAMP,
    -- (the session's TimeZone: set it to the plant's, e.g. ALTER DATABASE ... SET timezone).
    inserted_at TIMESTAMP(6)     NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT TAG_VALUES_PK PRIMARY KEY (plc_code, tag_address, timestamp)
);

CREATE INDEX IF NOT EXISTS TAG_VALUES_TS_IDX ON TAG_VALUES (timestamp);
