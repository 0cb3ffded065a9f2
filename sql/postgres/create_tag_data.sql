-- TAG_DATA: the table of the spec's quickstart (Step 1), for the PostgreSQL sink. Written with
--   ORACLE_TABLE=TAG_DATA
--   TABLE_COLUMNS=tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}, quality={quality}
-- See sql/oracle/create_tag_data.sql for what each column holds.
CREATE TABLE IF NOT EXISTS TAG_DATA (
    tag_name        VARCHAR(100) NOT NULL,
    tag_value       VARCHAR(255) NOT NULL,
    timestamp       TIMESTAMP(6) NOT NULL,
    quality         VARCHAR(20)  NOT NULL,
    CONSTRAINT pk_tag_data PRIMARY KEY (tag_name, timestamp)
);

CREATE INDEX IF NOT EXISTS idx_tag_data_timestamp ON TAG_DATA (timestamp);
