-- A member's conversations page by keyset: each participant row keeps the time of the last message its member sees (blocks hide some), kept by node.messages in the sending transaction, indexed with the conversation id as tiebreak; the moderators' reported messages page by (created_at, id) within a state.

-- NULL: no message this member sees yet (a conversation started by someone she blocks).
ALTER TABLE conversation_participants ADD COLUMN last_message_at timestamptz;

UPDATE conversation_participants p
SET last_message_at = (
    SELECT max(m.created_at) FROM messages m
    WHERE m.conversation_id = p.conversation_id
      AND NOT EXISTS (SELECT 1 FROM message_blocks b
                      WHERE b.user_id = p.user_id AND b.created_at <= m.created_at
                        AND (b.blocked_user_id = m.author_user_id OR b.blocked_actor_id = m.author_actor_id)))
WHERE p.user_id IS NOT NULL;

CREATE INDEX conversation_participants_recent ON conversation_participants
    (user_id, last_message_at DESC, conversation_id DESC)
    WHERE user_id IS NOT NULL AND left_at IS NULL AND last_message_at IS NOT NULL;

-- The participants of a conversation (named on each row of the list), whoever they are.
CREATE INDEX conversation_participants_conversation ON conversation_participants (conversation_id);

DROP INDEX message_reports_list;
CREATE INDEX message_reports_list ON message_reports (state, created_at DESC, id DESC);
