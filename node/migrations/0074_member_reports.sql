-- Reports by local members: at most one open report per member and post (two quick submissions file one).

CREATE UNIQUE INDEX reports_open_by_member ON reports (reporter_user_id, post_ids)
    WHERE state = 'open' AND reporter_user_id IS NOT NULL;
