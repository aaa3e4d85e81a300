-- Log entries counted per minute, component and status class, kept by triggers, so /logs/stats
-- reads one row per minute instead of every entry (a day at a few hundred requests a second is
-- tens of millions of entries). Exact under retention and edits: deletes and updates move the
-- counts too. Only the partial minutes at the ends of a range are counted from the entries.
CREATE TABLE log_minute_counts (
    minute_ms INTEGER NOT NULL,
    component TEXT    NOT NULL,
    class     TEXT    NOT NULL,
    n         INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (minute_ms, component, class)
) WITHOUT ROWID;
INSERT INTO log_minute_counts (minute_ms, component, class, n)
SELECT (at_ms / 60000) * 60000, component,
       CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END, count(*)
FROM log_entries GROUP BY 1, 2, 3;

CREATE TRIGGER log_entries_count_insert AFTER INSERT ON log_entries BEGIN
    INSERT INTO log_minute_counts (minute_ms, component, class, n)
    VALUES ((new.at_ms / 60000) * 60000, new.component,
            CASE WHEN new.status IS NULL THEN 'none' ELSE (new.status / 100) || 'xx' END, 1)
    ON CONFLICT (minute_ms, component, class) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER log_entries_count_delete AFTER DELETE ON log_entries BEGIN
    UPDATE log_minute_counts SET n = n - 1
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component
      AND class = CASE WHEN old.status IS NULL THEN 'none' ELSE (old.status / 100) || 'xx' END;
    DELETE FROM log_minute_counts
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component AND n = 0;
END;

CREATE TRIGGER log_entries_count_update AFTER UPDATE OF at_ms, component, status ON log_entries BEGIN
    UPDATE log_minute_counts SET n = n - 1
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component
      AND class = CASE WHEN old.status IS NULL THEN 'none' ELSE (old.status / 100) || 'xx' END;
    DELETE FROM log_minute_counts
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component AND n = 0;
    INSERT INTO log_minute_counts (minute_ms, component, class, n)
    VALUES ((new.at_ms / 60000) * 60000, new.component,
            CASE WHEN new.status IS NULL THEN 'none' ELSE (new.status / 100) || 'xx' END, 1)
    ON CONFLICT (minute_ms, component, class) DO UPDATE SET n = n + 1;
END;

-- The partial minutes at the ends of a range are counted from the entries: an index that holds
-- what they count answers them without visiting a row.
DROP INDEX log_entries_at;
CREATE INDEX log_entries_at ON log_entries (at_ms, component, status);
