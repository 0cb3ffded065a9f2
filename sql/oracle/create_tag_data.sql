-- TAG_DATA: the table of the spec's quickstart (Step 1), for plants that already have it.
-- The service writes it with this column mapping (README, "Writing into your own table"):
--   ORACLE_TABLE=TAG_DATA
--   TABLE_COLUMNS=tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}, quality={quality}
-- tag_name is PLC code and tag address joined by a dot (PLC01.D100); tag_value holds the
-- number as text (12345.0); a value without a number (a BAD read) cannot be stored, since
-- tag_value is NOT NULL, and goes to a rejected file. The primary key (tag_name, timestamp)
-- is the mapping's key: a resent row is a duplicate, never a second row.
CREATE TABLE TAG_DATA (
    tag_name        VARCHAR2(100) NOT NULL,
    tag_value       VARCHAR2(255) NOT NULL,
    timestamp       TIMESTAMP(6) NOT NULL,
    quality         VARCHAR2(20) NOT NULL,
    CONSTRAINT pk_tag_data PRIMARY KEY (tag_name, timestamp)
);

CREATE INDEX idx_tag_data_timestamp ON TAG_DATA(timestamp);
