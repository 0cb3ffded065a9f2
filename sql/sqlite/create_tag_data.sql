-- TAG_DATA: the table of the spec's quickstart (Step 1), for the SQLite sink. Written with
--   ORACLE_TABLE=TAG_DATA
--   TABLE_COLUMNS=tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}, quality={quality}
-- See sql/oracle/create_tag_data.sql for what each column holds. As in TAG_VALUES, the
-- timestamp is INTEGER microseconds since 1970-01-01 (in TIMESTAMP_ZONE's clock).
CREATE TABLE IF NOT EXISTS TAG_DATA (
    tag_name        TEXT    NOT NULL CHECK (length(CAST(tag_name AS BLOB)) <= 100),
    tag_value       TEXT    NOT NULL CHECK (length(CAST(tag_value AS BLOB)) <= 255),
    timestamp       INTEGER NOT NULL,
    quality         TEXT    NOT NULL CHECK (length(CAST(quality AS BLOB)) <= 20),
    PRIMARY KEY (tag_name, timestamp)
) STRICT;

CREATE INDEX IF NOT EXISTS idx_tag_data_timestamp ON TAG_DATA (timestamp);
