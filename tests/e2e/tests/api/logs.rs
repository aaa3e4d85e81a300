//! The structured log: every component's requests and domain events, admin-only queries,
//! and a hash chain that exposes edits and deletions.

use e2e::PASSWORD;
use serde_json::{Value, json};

use crate::helpers::*;

async fn app_with_admin() -> (TestApp, String) {
    let app = spawn_app().await;
    let token = app.admin("auditor").await;
    (app, token)
}

async fn logs(app: &TestApp, token: &str, query: &str) -> Value {
    app.get_with_token(&format!("/logs{query}"), token)
        .await
        .expect(200)
        .json()
}

/// Seals pending entries and walks the chain (`GET /logs/verify`).
async fn verify_chain(app: &TestApp, token: &str) -> Value {
    logs(app, token, "/verify").await
}

/// Waits until a query returns at least `n` entries (entries are stored just after responses).
async fn wait_for(app: &TestApp, token: &str, query: &str, n: usize) -> Vec<Value> {
    app.eventually(|| async {
        let entries = logs(app, token, query).await["entries"]
            .as_array()
            .unwrap()
            .clone();
        (entries.len() >= n).then_some(entries)
    })
    .await
}

#[tokio::test]
async fn every_components_requests_are_recorded_with_the_access_fields() {
    let (app, admin) = app_with_admin().await;
    let (_, token) = app.signed_in_user("visitor").await;
    app.get("/health").await.expect(200);
    app.get("/openapi.json").await.expect(200);
    app.get_with_token("/auth/authenticate", &token)
        .await
        .expect(200);
    for component in [
        "health",
        "openapi",
        "accounts",
        "login",
        "authenticate",
        "logs",
    ] {
        let entries = wait_for(
            &app,
            &admin,
            &format!("?component={component}&event=http.request"),
            1,
        )
        .await;
        let entry = &entries[0];
        assert_eq!(entry["component"], component);
        for field in [
            "method",
            "route",
            "status",
            "duration_ms",
            "request_id",
            "at",
            "level",
        ] {
            assert!(
                !entry[field].is_null(),
                "{component} entry lacks {field}: {entry}"
            );
        }
    }
    let authenticated = wait_for(&app, &admin, "?component=authenticate", 1).await;
    assert!(
        authenticated[0]["user_id"].is_string(),
        "the user is known: {}",
        authenticated[0]
    );
}

#[tokio::test]
async fn domain_events_are_recorded_with_levels() {
    let (app, admin) = app_with_admin().await;
    let (user, token) = app.signed_in_user("eventful").await;
    app.login_response("eventful", "wrong password!")
        .await
        .problem(401);
    app.send(
        app.request(reqwest::Method::POST, "/auth/logout")
            .bearer_auth(&token),
    )
    .await
    .expect(204);
    let user_id = user["id"].as_str().unwrap();
    for event in ["user.registered", "login.succeeded", "logout"] {
        let entries = wait_for(&app, &admin, &format!("?event={event}&user={user_id}"), 1).await;
        assert_eq!(entries[0]["level"], "info", "{event}");
    }
    let failed = wait_for(&app, &admin, "?event=login.failed", 1).await;
    assert_eq!(failed[0]["level"], "warn");
    assert_eq!(failed[0]["fields"]["username"], "eventful");
}

#[tokio::test]
async fn with_the_access_log_off_domain_events_are_still_recorded_but_requests_are_not() {
    let app = spawn_app_with(|config| config.variable("access_log", "off")).await;
    let admin = app.admin("auditor").await;
    let (user, _) = app.signed_in_user("quiet").await;
    let user_id = user["id"].as_str().unwrap();
    // A request's access entry would be stored in the same statement as its domain events, and
    // each component's instance stores its own: wait for the events of both requests.
    for event in ["user.registered", "login.succeeded"] {
        let entries = wait_for(&app, &admin, &format!("?event={event}&user={user_id}"), 1).await;
        assert_eq!(entries.len(), 1, "{event}");
    }
    let requests = logs(&app, &admin, "?event=http.request").await;
    assert_eq!(
        requests["entries"],
        json!([]),
        "no access entries: {requests}"
    );
}

#[tokio::test]
async fn filters_narrow_the_entries() {
    let (app, admin) = app_with_admin().await;
    let (user, _) = app.signed_in_user("filtered").await;
    app.send(
        app.request(reqwest::Method::GET, "/health")
            .header("x-request-id", "find-me-42"),
    )
    .await
    .expect(200);
    app.get("/no-such-route-but-health").await;
    app.send(app.request(reqwest::Method::POST, "/health"))
        .await
        .problem(405);

    let by_request = wait_for(&app, &admin, "?request_id=find-me-42", 1).await;
    assert_eq!(by_request.len(), 1);
    assert_eq!(by_request[0]["route"], "/health");

    let not_allowed = wait_for(&app, &admin, "?status=405", 1).await;
    assert!(not_allowed.iter().all(|e| e["status"] == 405));
    let client_errors = logs(&app, &admin, "?status=4xx").await["entries"].clone();
    assert!(
        client_errors
            .as_array()
            .unwrap()
            .iter()
            .all(|e| { (400..500).contains(&e["status"].as_i64().unwrap()) })
    );
    let warnings = logs(&app, &admin, "?level=warn").await["entries"].clone();
    assert!(
        warnings
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["level"] == "warn")
    );
    assert!(!warnings.as_array().unwrap().is_empty());

    let by_username = wait_for(&app, &admin, "?user=Filtered", 2).await;
    let by_id = logs(
        &app,
        &admin,
        &format!("?user={}", user["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(by_username, *by_id["entries"].as_array().unwrap());
    assert!(by_username.iter().all(|e| e["user_id"] == user["id"]));
    assert_eq!(
        logs(&app, &admin, "?user=nobody").await["entries"],
        json!([])
    );

    let future = logs(&app, &admin, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["entries"], json!([]));
    let past = logs(&app, &admin, "?until=2000-01-01T00:00:00Z").await;
    assert_eq!(past["entries"], json!([]));
    let all_now = logs(
        &app,
        &admin,
        "?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z",
    )
    .await;
    assert!(!all_now["entries"].as_array().unwrap().is_empty());

    for bad in [
        "?level=loud",
        "?status=7xx",
        "?since=yesterday",
        "?limit=0",
        "?limit=501",
        "?cursor=zz",
        "?bogus=1",
    ] {
        app.get_with_token(&format!("/logs{bad}"), &admin)
            .await
            .problem(400);
    }
}

/// `since` and `until` bound the newest-first walk by the least and greatest ids the per-minute
/// and per-hour counts have seen on their side. Ids follow the order entries are stored in, not
/// their times, so this moves entries into two earlier hours, newer ones first, so that older
/// ones (smaller ids) reach counts that already exist: in the first hour, minutes that newer
/// entries made; in the second, minutes of their own in an hour that newer entries made. Each
/// bound, and each pair of them, inside those minutes or in the empty hours around them, must
/// still find every entry.
#[tokio::test]
async fn since_and_until_find_every_entry_inside_whatever_order_they_were_stored_in() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..100 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health&limit=100", 100).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let database = open_database(&app);
    let (first, last_moved): (i64, i64) = database
        .query_row("SELECT min(id), max(id) FROM log_entries", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let middle = (first + last_moved) / 2;
    let quarter = (first + middle) / 2;
    let hour_a = "(strftime('%s', 'now') / 3600 - 3) * 3600000";
    let hour_b = format!("{hour_a} + 3600000");
    let seconds = "(id % 13) * 1000";
    for (moved, to) in [
        (
            format!("id > {middle} AND id % 5 <> 0"),
            format!("{hour_a} + (30 + id % 8) * 60000 + {seconds}"),
        ),
        (
            format!("id > {middle} AND id % 5 = 0"),
            format!("{hour_b} + 45 * 60000 + {seconds}"),
        ),
        (
            format!("id > {quarter} AND id <= {middle}"),
            format!("{hour_a} + (30 + id % 8) * 60000 + {seconds}"),
        ),
        (
            format!("id <= {quarter}"),
            format!("{hour_b} + ((id - {first}) % 30) * 60000 + {seconds}"),
        ),
    ] {
        database
            .execute(
                &format!("UPDATE log_entries SET at_ms = {to} WHERE {moved}"),
                [],
            )
            .unwrap();
    }
    assert_counts_bound_their_ids(&database);
    // Every second an entry is in and the one after it, and hours before and after them all.
    let moments: Vec<(i64, String)> = database
        .prepare(
            "SELECT DISTINCT at_ms / 1000 * 1000 + step,
                    strftime('%Y-%m-%dT%H:%M:%SZ', at_ms / 1000 + step / 1000, 'unixepoch')
             FROM log_entries, (SELECT 0 AS step UNION ALL SELECT 1000)
             UNION
             SELECT moment, strftime('%Y-%m-%dT%H:%M:%SZ', moment / 1000, 'unixepoch')
             FROM (SELECT min(at_ms) / 1000 * 1000 + hours * 3600000 AS moment
                   FROM log_entries, (SELECT -3 AS hours UNION ALL SELECT -1 UNION ALL SELECT 5)
                   GROUP BY hours)",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(moments.len() > 10);
    let checked = (&app, admin.as_str(), &database);
    for (moment_ms, moment) in &moments {
        for (filter, inside) in [("since", "at_ms >= ?1"), ("until", "at_ms < ?1")] {
            let query = format!("{filter}={moment}");
            assert_finds_what_sqlite_does(checked, last_moved, &query, inside, &[*moment_ms]).await;
        }
    }
    // Both bounds at once: every pair from a sample of the moments, and each with the next.
    let mut moments = moments;
    moments.sort();
    let sample: Vec<&(i64, String)> = moments
        .iter()
        .step_by((moments.len() / 12).max(1))
        .collect();
    let pairs = sample
        .iter()
        .enumerate()
        .flat_map(|(n, since)| sample[n + 1..].iter().map(move |until| (*since, *until)))
        .chain(moments.windows(2).map(|pair| (&pair[0], &pair[1])));
    for ((since_ms, since), (until_ms, until)) in pairs {
        let query = format!("since={since}&until={until}");
        let inside = "at_ms >= ?1 AND at_ms < ?2";
        assert_finds_what_sqlite_does(checked, last_moved, &query, inside, &[*since_ms, *until_ms])
            .await;
    }
    // The requests above stored their own entries the usual way, several to a minute.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_counts_bound_their_ids(&database);
}

/// `GET /logs?{query}` answers the ids SQLite finds with `condition`, newest first, among the
/// entries up to `last_moved` (those stored after it are the test's own requests).
async fn assert_finds_what_sqlite_does(
    (app, admin, database): (&TestApp, &str, &rusqlite::Connection),
    last_moved: i64,
    query: &str,
    condition: &str,
    params: &[i64],
) {
    let expected: Vec<i64> = database
        .prepare(&format!(
            "SELECT id FROM log_entries WHERE {condition} AND id <= {last_moved} ORDER BY id DESC"
        ))
        .unwrap()
        .query_map(rusqlite::params_from_iter(params), |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let found: Vec<i64> = logs(app, admin, &format!("?{query}&limit=500")).await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_i64().unwrap())
        .filter(|&id| id <= last_moved)
        .collect();
    assert_eq!(found, expected, "{query}");
}

/// No per-minute or per-hour count has a first id above the least id it counts, nor a last id
/// below the greatest.
fn assert_counts_bound_their_ids(database: &rusqlite::Connection) {
    for (counts, period, period_ms) in [
        ("log_minute_counts", "minute_ms", 60_000),
        ("log_hour_counts", "hour_ms", 3_600_000),
    ] {
        let counted_entries = format!(
            "FROM log_entries
             WHERE at_ms / {period_ms} * {period_ms} = counted.{period}
               AND component = counted.component
               AND CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END
                   = counted.class"
        );
        let outside: i64 = database
            .query_row(
                &format!(
                    "SELECT count(*) FROM {counts} AS counted
                     WHERE first_id > (SELECT min(id) {counted_entries})
                        OR last_id < (SELECT max(id) {counted_entries})"
                ),
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(outside, 0, "{counts} with ids outside their bounds");
    }
}

#[tokio::test]
async fn pages_are_newest_first_without_gaps_or_duplicates() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..23 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health&limit=500", 23).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?component=health&limit=5&cursor={c}"),
            None => "?component=health&limit=5".to_owned(),
        };
        let page = logs(&app, &admin, &query).await;
        for entry in page["entries"].as_array().unwrap() {
            seen.push(entry["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    assert!(
        seen.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first: {seen:?}"
    );
}

#[tokio::test]
async fn only_admins_may_read_the_logs() {
    let (app, _) = app_with_admin().await;
    let (_, user) = app.signed_in_user("curious").await;
    for path in ["/logs", "/logs/stats", "/logs/verify"] {
        app.get_with_token(path, &user).await.problem(403);
        app.get(path).await.problem(401);
    }
}

/// (component, status class, count) per bucket of `bucket_ms`, in bucket order, as SQLite counts
/// them from the entries themselves over [since, until).
fn counted_from_entries(
    app: &TestApp,
    since: i64,
    until: i64,
    bucket_ms: i64,
) -> Vec<(String, String, i64)> {
    let database = open_database(app);
    let mut statement = database
        .prepare(
            "SELECT component,
                    CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END AS class,
                    (at_ms / ?3) * ?3 AS bucket, count(*)
             FROM log_entries WHERE at_ms >= ?1 AND at_ms < ?2
             GROUP BY component, class, bucket ORDER BY bucket, component, class",
        )
        .unwrap();
    statement
        .query_map([since, until, bucket_ms], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn stats_from_the_minute_and_hour_counts_equal_the_entries_after_moves_and_deletions() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..40 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health&limit=100", 40).await;
    // Entries of the requests so far (wait_for's own included) are stored within 100 ms; after
    // this, only the stats requests below add entries, all later than every moved one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Spread the entries over eight minutes in each of the last three hours, then remove some,
    // as retention would: the triggers must move and drop their counts.
    let database = open_database(&app);
    database
        .execute(
            "UPDATE log_entries
             SET at_ms = at_ms - (id % 3) * 3600000 - (id % 8) * 60000 - (id % 13) * 1000",
            [],
        )
        .unwrap();
    database
        .execute("DELETE FROM log_entries WHERE id % 5 = 0", [])
        .unwrap();
    let now: i64 = database
        .query_row("SELECT max(at_ms) FROM log_entries", [], |row| row.get(0))
        .unwrap();
    let rfc3339 = |ms: i64| -> String {
        database
            .query_row(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000.0, 'unixepoch')",
                [ms],
                |row| row.get(0),
            )
            .unwrap()
    };
    // Whole minutes with ragged ends, a range inside one minute (from an entry moved three
    // minutes back to the end of its minute), aligned ends; then hours and a day with ragged
    // ends (whole hours, the minutes around them and the partial minutes) and aligned hours.
    let (minute, hour, day) = (60_000, 3_600_000, 86_400_000);
    let aligned = now / minute * minute;
    let aligned_hour = now / hour * hour;
    let moved: i64 = database
        .query_row(
            "SELECT at_ms FROM log_entries WHERE id % 8 = 3 ORDER BY id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let end_of_its_minute = (moved / minute * minute + minute - 1).max(moved + 1);
    for (since, until, bucket, bucket_ms) in [
        (now - 7 * minute - 12_345, now - 20_500, "minute", minute),
        (moved, end_of_its_minute, "minute", minute),
        (aligned - 6 * minute, aligned, "minute", minute),
        (
            now - 2 * hour - 7 * minute - 12_345,
            now - 20_500,
            "hour",
            hour,
        ),
        (aligned_hour - 3 * hour, aligned_hour, "hour", hour),
        (now - 3 * hour, now - 1_000, "day", day),
    ] {
        let path = format!(
            "/logs/stats?bucket={bucket}&since={}&until={}",
            rfc3339(since),
            rfc3339(until)
        );
        let stats = app.get_with_token(&path, &admin).await.expect(200).json();
        let reported: Vec<(String, String, i64)> = stats["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["component"].as_str().unwrap().to_owned(),
                    row["status_class"].as_str().unwrap().to_owned(),
                    row["count"].as_i64().unwrap(),
                )
            })
            .collect();
        let expected = counted_from_entries(&app, since, until, bucket_ms);
        assert!(!expected.is_empty(), "the range {path} holds entries");
        assert_eq!(reported, expected, "{path}");
    }
    // Without until, up to now: requests go on being logged meanwhile, so the total lies
    // between the counts taken just before and just after.
    let since = aligned - 6 * minute + 1_000;
    let count_since = || -> i64 {
        counted_from_entries(&app, since, i64::MAX, minute)
            .iter()
            .map(|(_, _, n)| n)
            .sum()
    };
    let before = count_since();
    let path = format!("/logs/stats?since={}", rfc3339(since));
    let total = app.get_with_token(&path, &admin).await.expect(200).json()["total"]
        .as_i64()
        .unwrap();
    let after = count_since();
    assert!(
        before <= total && total <= after,
        "{before} <= {total} <= {after}"
    );
}

#[tokio::test]
async fn stats_count_by_component_status_class_and_bucket() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..3 {
        app.get("/health").await.expect(200);
    }
    app.send(app.request(reqwest::Method::POST, "/health"))
        .await
        .problem(405);
    wait_for(&app, &admin, "?component=health", 4).await;
    let stats = app
        .get_with_token("/logs/stats?bucket=minute", &admin)
        .await
        .expect(200)
        .json();
    assert!(stats["by_component"]["health"].as_i64().unwrap() >= 4);
    assert!(stats["by_status_class"]["2xx"].as_i64().unwrap() >= 3);
    assert!(stats["by_status_class"]["4xx"].as_i64().unwrap() >= 1);
    assert_eq!(stats["bucket_seconds"], 60);
    let bucket_total: i64 = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(bucket_total, stats["total"].as_i64().unwrap());
    app.get_with_token("/logs/stats?bucket=week", &admin)
        .await
        .problem(400);
}

#[tokio::test]
async fn no_password_token_or_hash_is_ever_stored_in_the_log() {
    let (app, admin) = app_with_admin().await;
    let (_, token) = app.signed_in_user("secretive").await;
    app.login_response("secretive", "a wrong password guess")
        .await
        .problem(401);
    app.get_with_token("/auth/authenticate", &token)
        .await
        .expect(200);
    wait_for(&app, &admin, "?event=login.failed", 1).await;
    let hash: String = open_database(&app)
        .query_row(
            "SELECT password_hash FROM users WHERE username_key = 'secretive'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let db = open_database(&app);
    let mut statement = db
        .prepare(
            "SELECT fields || coalesce(route, '') || coalesce(request_id, '') FROM log_entries",
        )
        .unwrap();
    let rows: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.len() > 5);
    for row in rows {
        for secret in [PASSWORD, "a wrong password guess", &token, &admin, &hash] {
            assert!(!row.contains(secret), "a secret is in the log: {row}");
        }
    }
}

#[tokio::test]
async fn the_chain_verifies_and_an_edited_row_is_found() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..10 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health", 10).await;
    let report = verify_chain(&app, &admin).await;
    assert_eq!(report["valid"], true, "{report}");
    assert!(report["entries_checked"].as_i64().unwrap() >= 10);

    let edited: i64 = open_database(&app)
        .query_row(
            "SELECT id FROM log_entries WHERE component = 'health' ORDER BY id LIMIT 1 OFFSET 4",
            [],
            |r| r.get(0),
        )
        .unwrap();
    open_database(&app)
        .execute("UPDATE log_entries SET status = 500 WHERE id = ?", [edited])
        .unwrap();
    let report = verify_chain(&app, &admin).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["broken_at"], edited, "{report}");
}

#[tokio::test]
async fn a_deleted_row_breaks_the_chain_at_its_successor() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..6 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health", 6).await;
    verify_chain(&app, &admin).await;
    let ids: Vec<i64> = {
        let db = open_database(&app);
        let mut statement = db
            .prepare("SELECT id FROM log_entries WHERE component = 'health' ORDER BY id")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    open_database(&app)
        .execute("DELETE FROM log_entries WHERE id = ?", [ids[2]])
        .unwrap();
    let report = verify_chain(&app, &admin).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["broken_at"], ids[3], "{report}");
}

#[tokio::test]
async fn concurrent_requests_keep_the_chain_valid() {
    let (app, admin) = app_with_admin().await;
    let requests = (0..150).map(|_| app.get("/health"));
    for reply in futures::future::join_all(requests).await {
        reply.expect(200);
    }
    wait_for(&app, &admin, "?component=health&limit=500", 150).await;
    let report = verify_chain(&app, &admin).await;
    assert_eq!(report["valid"], true, "{report}");
    assert!(report["entries_checked"].as_i64().unwrap() >= 150);
}

#[tokio::test]
async fn sealers_racing_each_other_and_the_writers_leave_one_valid_chain() {
    let (app, admin) = app_with_admin().await;
    // Each verify seals first, so these seals race each other and the seals the writers'
    // flushes start every 256 entries; a seal that lost the race must read the chain again.
    let writes = futures::future::join_all((0..600).map(|_| app.get("/health")));
    let seals = futures::future::join_all((0..24).map(|_| verify_chain(&app, &admin)));
    let (replies, reports) = futures::future::join(writes, seals).await;
    for reply in replies {
        reply.expect(200);
    }
    for report in reports {
        assert_eq!(report["valid"], true, "{report}");
    }
    let report = app
        .eventually(|| async {
            let report = verify_chain(&app, &admin).await;
            (report["entries_checked"].as_i64().unwrap() >= 600).then_some(report)
        })
        .await;
    assert_eq!(report["valid"], true, "{report}");
}

#[tokio::test]
async fn retention_prunes_old_entries_and_the_chain_still_verifies() {
    let (app, admin) = app_with_admin().await;
    for _ in 0..5 {
        app.get("/health").await.expect(200);
    }
    wait_for(&app, &admin, "?component=health", 5).await;
    // Age the first entries (still unsealed) beyond the 30-day retention.
    let forty_days_ms = 40 * 86_400_000_i64;
    let aged = open_database(&app)
        .execute(
            "UPDATE log_entries SET at_ms = at_ms - ?1 WHERE id IN (SELECT id FROM log_entries ORDER BY id LIMIT 3) AND hash IS NULL",
            [forty_days_ms],
        )
        .unwrap();
    assert_eq!(aged, 3, "the entries were not sealed yet");
    let report = verify_chain(&app, &admin).await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["anchor_id"], 3, "{report}");
    let remaining: i64 = open_database(&app)
        .query_row("SELECT count(*) FROM log_entries WHERE id <= 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(remaining, 0);
}
