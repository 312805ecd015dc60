-- « Nouveau message » notifications (node.notifications, node.messages): one unread notification per member and conversation, never its content.

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'reply_followed', 'reply_to_me', 'expert_answer', 'mention', 'registration_approved',
    'registration_refused', 'moderation', 'report_handled', 'new_report', 'new_application', 'new_message'));
-- new_message: the conversation (its subject and messages are never copied here)
ALTER TABLE notifications ADD COLUMN conversation_id bigint REFERENCES conversations (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX notifications_once_conversation ON notifications (user_id, conversation_id)
    WHERE conversation_id IS NOT NULL AND read_at IS NULL;
