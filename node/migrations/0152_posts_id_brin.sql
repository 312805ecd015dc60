-- A BRIN index of post ids, so search reads the matches of a span of recent ids only (issue 17).

-- Post ids grow with the table's pages, so a span of ids is a few page ranges: ANDed with
-- the GIN index, a rare word's search visits only the pages of that span holding matches
-- (node/search.py). A few hundred kB at 1,200,000 posts; new ranges are summarised as they
-- fill (autosummarize) and, until then, always read.
CREATE INDEX posts_id_brin ON posts USING brin (id) WITH (pages_per_range = 32, autosummarize = on);
