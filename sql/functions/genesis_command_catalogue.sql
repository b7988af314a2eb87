-- The command catalogue, SQL side: one row per command type. Adding a command type is one row
-- here plus its payload model in genesis/commands.py.
--   is_async         202 + async_tasks row, completed later by complete_command
--   event_type       the event the command records
--   required_stage   the stage the session must be in (NULL: any open stage)
--   required_text    a payload key that must hold a non-empty string (NULL: none)
--   completed_event / failed_event  what complete_command appends for an async command
CREATE OR REPLACE FUNCTION genesis_command_catalogue()
RETURNS TABLE (command_type text, is_async boolean, event_type text, required_stage text,
               required_text text, completed_event text, failed_event text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES
        ('RequestConceptGeneration', true, 'Genesis.Session.ConceptGenerationRequested',
         'CONCEPT_SELECTION', NULL, 'Genesis.Session.ConceptProposed', 'Genesis.Session.ConceptGenerationFailed'),
        ('SubmitFeedback', true, 'Genesis.Session.FeedbackSubmitted',
         NULL, 'feedback', 'Genesis.Session.ContentRevised', 'Genesis.Session.FeedbackFailed'),
        ('ConfirmStage', false, 'Genesis.Session.StageConfirmed',
         NULL, 'stage', NULL, NULL)
$$;
