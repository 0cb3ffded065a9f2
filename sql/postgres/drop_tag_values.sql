-- Removes TAG_VALUES and its index. The data is gone afterwards.
DROP TABLE IF EXISTS TAG_VALUES;
