-- TAG_VALUES for the embedded SQLite sink (SINK=sqlite, the default without Oracle).
-- The sink runs this itself when the table is missing, with TAG_VALUES replaced by the
-- configured table name (ORACLE_TABLE).
--
-- It mirrors sql/oracle/create_tag_values.sql: the CHECK constraints reproduce Oracle's column
-- limits (VARCHAR2 lengths are in bytes; NUMBER stops short of 1e126), so a row Oracle would
-- refuse is refused here too and goes to a rejected file the same way.
--
-- timestamp and inserted_at are INTEGER microseconds since 1970-01-01 UTC: a third faster to
-- insert than text and exact. To read them as text, query the view TAG_VALUES_TEXT:
--   SELECT * FROM TAG_VALUES_TEXT ORDER BY timestamp DESC LIMIT 10;
CREATE TABLE IF NOT EXISTS TAG_VALUES (
    timestamp   INTEGER NOT NULL,
    plc_code    TEXT    NOT NULL CHECK (length(CAST(plc_code AS BLOB)) BETWEEN 1 AND 50),
    tag_address TEXT    NOT NULL CHECK (length(CAST(tag_address AS BLOB)) BETWEEN 1 AND 100),
    tag_value   REAL             CHECK (tag_value IS NULL OR abs(tag_value) < 1e126),
    quality     TEXT    NOT NULL CHECK (quality IN ('GOOD', 'BAD', 'UNCERTAIN')),
    inserted_at INTEGER NOT NULL,
    PRIMARY KEY (plc_code, tag_address, timestamp)
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS TAG_VALUES_TS_IDX ON TAG_VALUES (timestamp);

-- Microsecond timestamps as ISO 8601 text, e.g. 2025-11-02T14:30:45.123456.
CREATE VIEW IF NOT EXISTS TAG_VALUES_TEXT AS
SELECT
    strftime('%Y-%m-%dT%H:%M:%S', timestamp / 1000000 - (timestamp % 1000000 < 0), 'unixepoch')
        || printf('.%06d', (timestamp % 1000000 + 1000000) % 1000000) AS timestamp,
    plc_code,
    tag_address,
    tag_value,
    quality,
    strftime('%Y-%m-%dT%H:%M:%S', inserted_at / 1000000 - (inserted_at % 1000000 < 0), 'unixepoch')
        || printf('.%06d', (inserted_at % 1000000 + 1000000) % 1000000) AS inserted_at
FROM TAG_VALUES;
