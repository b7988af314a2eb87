-- Agents report progress on a task (CONTRACT §9): the latest message is kept with the task, so the
-- NOTIFY that wakes the SSE hub stays a hint and the hub reads what it sends from the table.
ALTER TABLE async_tasks
    ADD COLUMN progress_message text NOT NULL DEFAULT ''
        CONSTRAINT async_tasks_progress_message_length CHECK (length(progress_message) <= 1000);
