-- Removes the SQLite TAG_VALUES table, its index and view. The data is gone afterwards.
DROP VIEW IF EXISTS TAG_VALUES_TEXT;
DROP TABLE IF EXISTS TAG_VALUES;
