-- Nothing to undo in the schema; the entries are written again at start either way.
SELECT 1;
