-- TAG_VALUES partitioned by day (Oracle 11g+ interval partitioning; Partitioning option or
-- Oracle 23ai Free / 19c+ on Autonomous). Use this instead of create_tag_values.sql for high
-- volumes: old days are dropped in one statement instead of a long DELETE, e.g.
--   ALTER TABLE TAG_VALUES DROP PARTITION FOR (TIMESTAMP '2025-01-01 00:00:00') UPDATE INDEXES;
-- Same columns and keys as create_tag_values.sql, so the writer needs no change.
CREATE TABLE TAG_VALUES (
    timestamp   TIMESTAMP(6)   NOT NULL,
    plc_code    VARCHAR2(50)   NOT NULL,
    tag_address VARCHAR2(100)  NOT NULL,
    tag_value   NUMBER,
    quality     VARCHAR2(20)   NOT NULL,
    inserted_at TIMESTAMP(6)   DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT PK_TAG_VALUES PRIMARY KEY (plc_code, tag_address, timestamp) USING INDEX LOCAL,
    CONSTRAINT CK_TAG_VALUES_QUALITY CHECK (quality IN ('GOOD', 'BAD', 'UNCERTAIN'))
)
PARTITION BY RANGE (timestamp) INTERVAL (NUMTODSINTERVAL(1, 'DAY'))
(
    PARTITION P_INITIAL VALUES LESS THAN (TIMESTAMP '2025-01-01 00:00:00')
);

-- Local: each day's index lives and is dropped with its partition.
CREATE INDEX IDX_TAG_VALUES_TIMESTAMP ON TAG_VALUES (timestamp) LOCAL;
