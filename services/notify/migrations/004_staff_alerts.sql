-- Deliveries to the street's own staff, beside the replies to residents: `escalation` is the SMS to the
-- leader on duty (带班领导) when a case escalates to the street leadership. Not a reply: it is never published
-- on wangge.replies (the residents' channel) nor shown on a resident's page.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('acknowledgement', 'progress', 'resolution', 'explanation', 'survey', 'rejection', 'escalation'));
