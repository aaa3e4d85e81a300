-- `GET /logs?status=2xx` walked the status index over the whole class and sorted it by id to
-- give the newest first: every 2xx entry of the log, nearly all of it, sorted for one page. An
-- index by class and id gives a class's entries newest first as they are stored, so a page
-- reads one page's worth. A single code (`status=404`) walks its class the same way, skipping
-- the other codes. It replaces the index by code, so a stored entry still costs one index.
DROP INDEX log_entries_status;
CREATE INDEX log_entries_status_class ON log_entries (status / 100, id) WHERE status IS NOT NULL;
