-- TAG_VALUES: one row per polled value. Run as the schema owner, e.g.
--   sqlplus scada_user@//oracle.example.com:1521/XEPDB1 @sql/oracle/create_tag_values.sql
-- The primary key makes every write idempotent: a resent or replayed row is skipped as a
-- duplicate (ORA-00001 through batch errors), never stored twice.
CREATE TABLE TAG_VALUES (
    timestamp   TIMESTAMP(6)   NOT NULL,
    plc_code    VARCHAR2(50)   NOT NULL,
    tag_address VARCHAR2(100)  NOT NULL,
    tag_value   NUMBER,
    quality     VARCHAR2(20)   NOT NULL,
    -- UTC, as the service's timestamps are by default. With TIMESTAMP_ZONE=local use
    --   inserted_at TIMESTAMP(6) DEFAULT LOCALTIMESTAMP NOT NULL,
    -- (the session's time zone, which the Oracle client takes from the service's machine).
    inserted_at TIMESTAMP(6)   DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT PK_TAG_VALUES PRIMARY KEY (plc_code, tag_address, timestamp),
    CONSTRAINT CK_TAG_VALUES_QUALITY CHECK (quality IN ('GOOD', 'BAD', 'UNCERTAIN'))
);

-- Time-range queries ("the last five minutes") across all tags.
CREATE INDEX IDX_TAG_VALUES_TIMESTAMP ON TAG_VALUES (timestamp);

-- Check:
--   SELECT table_name FROM user_tables WHERE table_name = 'TAG_VALUES';
