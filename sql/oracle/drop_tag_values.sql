-- Removes TAG_VALUES with its index and constraints. The data is gone afterwards.
DROP TABLE TAG_VALUES CASCADE CONSTRAINTS PURGE;
