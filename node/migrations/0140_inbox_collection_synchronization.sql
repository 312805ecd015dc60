-- FEP-8fcf (issue 11): a delivery's signed Collection-Synchronization header is kept with the activity it
-- came with, so the inbox worker can compare the sender's view of our follows with ours (the inbox itself
-- stays store-and-answer). NULL for the usual delivery without the header.
ALTER TABLE inbox_items ADD COLUMN sync_header text;
