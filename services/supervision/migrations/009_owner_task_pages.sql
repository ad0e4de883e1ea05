-- The owner's task list is read in pages by keyset (GET /api/v1/tasks?cursor=): this index holds exactly the
-- open tasks in the list's order, so each page is a short range scan whatever the owner's backlog. The state
-- list must stay the same as views.OWNER_STATES (the query spells it out so the planner can use this index).
CREATE INDEX IF NOT EXISTS cases_owner_open_tasks
    ON cases (owner, (COALESCE(due_at, 'infinity'::timestamptz)), (COALESCE(case_no, '')), case_id)
    WHERE state IN ('dispatched', 'in_progress', 'suspended', 'resolved', 'explained');
