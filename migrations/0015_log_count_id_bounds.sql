-- The least and greatest entry id each per-minute and per-hour count has seen, so `GET /logs`
-- can bound its newest-first walk by id for `since` and `until` without visiting the entries.
-- Ids follow the order entries are stored in, not their times (each instance stores its batch
-- after its requests), so a bound is the least (or greatest) id of every minute and hour on the
-- range's side. Before, `since` read `SELECT min(id) FROM log_entries WHERE at_ms >= ?`, which
-- walked every entry older than `since`: about 100 ms for the last hour of the benchmark's log
-- (a million entries over a week), in SQLite alone; and `until` walked every entry newer than
-- it (50 ms for three days back). These tables answer from one row per minute and key inside
-- the bound's hour, then one per hour and key: a millisecond or less.
--
-- A first id only ever falls and a last id only ever rises: deleting or moving entries leaves
-- them outside the ids still counted, which keeps them safe bounds. So are the defaults.
ALTER TABLE log_minute_counts ADD COLUMN first_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log_minute_counts ADD COLUMN last_id INTEGER NOT NULL DEFAULT 9223372036854775807;
ALTER TABLE log_hour_counts ADD COLUMN first_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log_hour_counts ADD COLUMN last_id INTEGER NOT NULL DEFAULT 9223372036854775807;

UPDATE log_minute_counts SET first_id = bounds.first_id, last_id = bounds.last_id
FROM (
    SELECT (at_ms / 60000) * 60000 AS minute_ms, component,
           CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END AS class,
           min(id) AS first_id, max(id) AS last_id
    FROM log_entries GROUP BY 1, 2, 3
) AS bounds
WHERE log_minute_counts.minute_ms = bounds.minute_ms
  AND log_minute_counts.component = bounds.component
  AND log_minute_counts.class = bounds.class;

UPDATE log_hour_counts SET first_id = bounds.first_id, last_id = bounds.last_id
FROM (
    SELECT (minute_ms / 3600000) * 3600000 AS hour_ms, component, class,
           min(first_id) AS first_id, max(last_id) AS last_id
    FROM log_minute_counts GROUP BY 1, 2, 3
) AS bounds
WHERE log_hour_counts.hour_ms = bounds.hour_ms
  AND log_hour_counts.component = bounds.component
  AND log_hour_counts.class = bounds.class;

-- 0012's triggers that add an entry to a minute, now with its id.
DROP TRIGGER log_entries_count_insert;
CREATE TRIGGER log_entries_count_insert AFTER INSERT ON log_entries BEGIN
    INSERT INTO log_minute_counts (minute_ms, component, class, n, first_id, last_id)
    VALUES ((new.at_ms / 60000) * 60000, new.component,
            CASE WHEN new.status IS NULL THEN 'none' ELSE (new.status / 100) || 'xx' END, 1,
            new.id, new.id)
    ON CONFLICT (minute_ms, component, class)
    DO UPDATE SET n = n + 1, first_id = min(first_id, excluded.first_id),
                  last_id = max(last_id, excluded.last_id);
END;

DROP TRIGGER log_entries_count_update;
CREATE TRIGGER log_entries_count_update AFTER UPDATE OF at_ms, component, status ON log_entries BEGIN
    UPDATE log_minute_counts SET n = n - 1
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component
      AND class = CASE WHEN old.status IS NULL THEN 'none' ELSE (old.status / 100) || 'xx' END;
    DELETE FROM log_minute_counts
    WHERE minute_ms = (old.at_ms / 60000) * 60000 AND component = old.component AND n = 0;
    INSERT INTO log_minute_counts (minute_ms, component, class, n, first_id, last_id)
    VALUES ((new.at_ms / 60000) * 60000, new.component,
            CASE WHEN new.status IS NULL THEN 'none' ELSE (new.status / 100) || 'xx' END, 1,
            new.id, new.id)
    ON CONFLICT (minute_ms, component, class)
    DO UPDATE SET n = n + 1, first_id = min(first_id, excluded.first_id),
                  last_id = max(last_id, excluded.last_id);
END;

-- 0014's triggers that carry a minute's changes to its hour, now with its ids.
DROP TRIGGER log_minute_counts_hour_insert;
CREATE TRIGGER log_minute_counts_hour_insert AFTER INSERT ON log_minute_counts BEGIN
    INSERT INTO log_hour_counts (hour_ms, component, class, n, first_id, last_id)
    VALUES ((new.minute_ms / 3600000) * 3600000, new.component, new.class, new.n,
            new.first_id, new.last_id)
    ON CONFLICT (hour_ms, component, class)
    DO UPDATE SET n = n + excluded.n, first_id = min(first_id, excluded.first_id),
                  last_id = max(last_id, excluded.last_id);
END;

DROP TRIGGER log_minute_counts_hour_update;
CREATE TRIGGER log_minute_counts_hour_update AFTER UPDATE OF n ON log_minute_counts BEGIN
    UPDATE log_hour_counts
    SET n = n + new.n - old.n, first_id = min(first_id, new.first_id),
        last_id = max(last_id, new.last_id)
    WHERE hour_ms = (new.minute_ms / 3600000) * 3600000 AND component = new.component
      AND class = new.class;
    DELETE FROM log_hour_counts
    WHERE hour_ms = (new.minute_ms / 3600000) * 3600000 AND component = new.component
      AND class = new.class AND n = 0;
END;
