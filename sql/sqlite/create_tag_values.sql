-- TAG_VALUES for the embedded SQLite sink (SINK=sqlite, the default without Oracle).
-- The sink runs this itself when the table is missing, with TAG_VALUES replaced by the
-- configured table name (ORACLE_TABLE).
--
-- It mirrors sql/oracle/create_tag_values.sql: the CHECK constraints reproduce Oracle's column
-- limits (VARCHAR2 lengths are in bytes; NUMBER stops short of 1e126; NULL passes), so a row
-- Oracle would refuse is refused here too and goes to a rejected file the same way.
--
-- The primary key holds the same columns as Oracle's, so a row is unique (and a resent row a
-- duplicate) exactly as there, but timestamp comes first: the table is stored in time order,
-- as a historian's should be, so each batch appends to the end of the B-tree instead of
-- touching one page per tag and rewriting each of them into the WAL. Measured here with 1,000
-- tags, that is about twenty times faster than (plc_code, tag_address, timestamp) first, and
-- it serves time-range queries without a second index.
--
-- inserted_at has no default: the sink fills it, in TIMESTAMP_ZONE's clock like the
-- timestamps the service assigns.
--
-- timestamp and inserted_at are INTEGER microseconds since 1970-01-01 UTC: faster to insert
-- than text and exact. To read them as text, query the view TAG_VALUES_TEXT:
--   SELECT * FROM TAG_VALUES_TEXT ORDER BY timestamp DESC LIMIT 10;
CREATE TABLE IF NOT EXISTS TAG_VALUES (
    timestamp   INTEGER NOT NULL,
    plc_code    TEXT    NOT NULL CHECK (length(CAST(plc_code AS BLOB)) BETWEEN 1 AND 50),
    tag_address TEXT    NOT NULL CHECK (length(CAST(tag_address AS BLOB)) BETWEEN 1 AND 100),
    tag_value   REAL             CHECK (tag_value > -1e126 AND tag_value < 1e126),
    -- Spelled out: "quality IN (...)" costs SQLite more than all the other checks together.
    quality     TEXT    NOT NULL CHECK (quality = 'GOOD' OR quality = 'BAD' OR quality = 'UNCERTAIN'),
    inserted_at INTEGER NOT NULL,
    PRIMARY KEY (timestamp, plc_code, tag_address)
) STRICT, WITHOUT ROWID;

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
