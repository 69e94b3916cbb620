-- Directory search: the category filter and the category list compare categories ignoring
-- case, and read this index rather than every row. The text search (`LIKE '%…%'`) cannot use
-- a B-tree index and scans the channels table.
-- Keep in step with ../postgres/0006_channel_search.sql.

CREATE INDEX channels_category ON channels (lower(category));
