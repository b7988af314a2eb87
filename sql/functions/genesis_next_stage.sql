-- The Genesis stage machine: the stage that follows `_stage` (NULL after FINISHED).
CREATE OR REPLACE FUNCTION genesis_next_stage(_stage text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE _stage
        WHEN 'CONCEPT_SELECTION' THEN 'STORY_CONCEPTION'
        WHEN 'STORY_CONCEPTION' THEN 'WORLDVIEW'
        WHEN 'WORLDVIEW' THEN 'CHARACTERS'
        WHEN 'CHARACTERS' THEN 'PLOT_OUTLINE'
        WHEN 'PLOT_OUTLINE' THEN 'FINISHED'
    END
$$;
