//! Messages: sending, reading, paging, privacy, concurrency and crash durability.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn send(app: &TestApp, token: &str, to: &str, body: &str) -> e2e::Reply {
    app.post_json_with_token("/messages", &json!({"to": to, "body": body}), token)
        .await
}

/// Every message a query pages through, following next_cursor to the end.
async fn all_pages(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if query.is_empty() { "?" } else { "&" };
        let mut path = format!("/messages{query}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get_with_token(&path, token).await.expect(200).json();
        messages.extend(page["messages"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return messages,
        }
    }
}

#[tokio::test]
async fn a_message_round_trips_byte_for_byte() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let text = "Hé 👩‍👩‍👧 مرحبا שלום e\u{301} tab\there\r\n  trailing  ";
    let sent = send(&app, &alice, "BOB", text).await.expect(201);
    let location = sent.header("location").unwrap().to_owned();
    let sent = sent.json();
    assert_eq!(sent["from"], "alice");
    assert_eq!(sent["to"], "bob");
    assert_eq!(sent["body"], text);
    assert_eq!(
        location,
        format!("/messages/{}", sent["id"].as_str().unwrap())
    );

    let received = app
        .get_with_token("/messages?with=alice", &bob)
        .await
        .expect(200);
    let raw = received.text();
    let page = received.json();
    assert_eq!(page["messages"][0], sent);
    assert_eq!(
        page["messages"][0]["body"].as_str().unwrap().as_bytes(),
        text.as_bytes()
    );
    assert!(
        raw.contains("👩‍👩‍👧"),
        "non-ASCII text is sent as UTF-8, unescaped"
    );
    let one = app
        .get_with_token(&location, &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(one, sent);
}

#[tokio::test]
async fn conversations_page_newest_first_without_gaps_or_duplicates_while_others_write() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let mut sent_ids = Vec::new();
    for i in 0..60 {
        let (from, to) = if i % 3 == 0 {
            (&bob, "alice")
        } else {
            (&alice, "bob")
        };
        sent_ids.push(
            send(&app, from, to, &format!("message {i}"))
                .await
                .expect(201)
                .json()["id"]
                .clone(),
        );
    }
    // The first page, then a burst of new messages, then the rest of the pages.
    let first = app
        .get_with_token("/messages?with=bob&limit=25", &alice)
        .await
        .expect(200)
        .json();
    let mut seen: Vec<Value> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    for i in 0..10 {
        send(&app, &bob, "alice", &format!("late {i}"))
            .await
            .expect(201);
    }
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = app
            .get_with_token(&format!("/messages?with=bob&limit=25&cursor={c}"), &alice)
            .await
            .expect(200)
            .json();
        seen.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].clone()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    sent_ids.reverse();
    assert_eq!(
        seen, sent_ids,
        "exactly the messages that existed, newest first"
    );
}

#[tokio::test]
async fn without_with_a_user_sees_everything_to_and_from_them() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let (_, carol) = app.signed_in_user("carol").await;
    send(&app, &alice, "bob", "a->b").await.expect(201);
    send(&app, &carol, "alice", "c->a").await.expect(201);
    send(&app, &bob, "carol", "b->c").await.expect(201);
    send(&app, &bob, "alice", "b->a").await.expect(201);
    let bodies: Vec<String> = all_pages(&app, &alice, "", 1)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, vec!["b->a", "c->a", "a->b"]);
}

#[tokio::test]
async fn nobody_reads_messages_they_did_not_send_or_receive() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let (_, eve) = app.signed_in_user("eve").await;
    let secret = send(&app, &alice, "bob", "for bob only")
        .await
        .expect(201)
        .json();
    let id = secret["id"].as_str().unwrap();
    app.get_with_token(&format!("/messages/{id}"), &bob)
        .await
        .expect(200);
    let hidden = app
        .get_with_token(&format!("/messages/{id}"), &eve)
        .await
        .problem(404);
    let missing = app
        .get_with_token("/messages/00000000-0000-4000-8000-000000000000", &eve)
        .await
        .problem(404);
    assert_eq!(
        hidden["detail"], missing["detail"],
        "no difference to probe for"
    );
    assert_eq!(
        app.get_with_token("/messages?with=alice", &eve)
            .await
            .expect(200)
            .json()["messages"],
        json!([])
    );
    assert_eq!(
        app.get_with_token("/messages", &eve).await.json()["messages"],
        json!([])
    );
    // A cursor taken from someone else's messages is refused.
    let foreign = e2e_cursor(id);
    app.get_with_token(&format!("/messages?cursor={foreign}"), &eve)
        .await
        .problem(400);
    assert!(
        id.len() == 36 && !id.chars().all(|c| c.is_ascii_digit()),
        "ids are not sequence numbers"
    );
}

/// Makes the cursor the API would give for a message id (base64url of its JSON string).
fn e2e_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("\"{id}\""))
}

#[tokio::test]
async fn bad_messages_get_clear_errors() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    app.register("bob", e2e::PASSWORD).await;
    let problem = send(&app, &alice, "nobody", "hello").await.problem(404);
    assert!(problem["detail"].as_str().unwrap().contains("nobody"));
    for (body, field) in [
        (json!({"to": "bob", "body": ""}), "body"),
        (json!({"to": "bob", "body": "   \n"}), "body"),
        (json!({"to": "bob", "body": "x".repeat(4_001)}), "body"),
        (json!({"to": "bob", "body": 42}), "body"),
        (json!({"to": "bob"}), "body"),
        (json!({"body": "hi"}), "to"),
        (json!({"to": "alice", "body": "me"}), "to"),
        (json!({"to": "bob", "body": "hi", "from": "bob"}), "from"),
        (json!({"to": "bob", "body": "nul \u{0} byte"}), "body"),
        (json!({"to": "bob", "body": "bell \u{7}"}), "body"),
        (json!({"to": "bob", "body": "gnp.exe\u{202E}"}), "body"),
    ] {
        let problem = app
            .post_json_with_token("/messages", &body, &alice)
            .await
            .problem(422);
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    send(&app, &alice, "bob", &"é".repeat(4_000))
        .await
        .expect(201);
    app.post_json("/messages", &json!({"to": "bob", "body": "hi"}))
        .await
        .problem(401);
    app.get("/messages").await.problem(401);
    for bad in ["?limit=0", "?limit=201", "?cursor=%%%", "?other=1"] {
        app.get_with_token(&format!("/messages{bad}"), &alice)
            .await
            .problem(400);
    }
    app.get_with_token("/messages?with=nobody", &alice)
        .await
        .problem(404);
}

#[tokio::test]
async fn unread_counts_and_marking_as_read() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let (_, carol) = app.signed_in_user("carol").await;
    for _ in 0..3 {
        send(&app, &bob, "alice", "from bob").await.expect(201);
    }
    send(&app, &carol, "alice", "from carol").await.expect(201);
    let unread = app
        .get_with_token("/messages/unread", &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(
        unread,
        json!({"unread": 4, "by_sender": {"bob": 3, "carol": 1}})
    );
    let marked = app
        .post_json_with_token("/messages/read", &json!({"with": "Bob"}), &alice)
        .await
        .expect(200)
        .json();
    assert_eq!(marked["marked"], 3);
    let unread = app.get_with_token("/messages/unread", &alice).await.json();
    assert_eq!(unread, json!({"unread": 1, "by_sender": {"carol": 1}}));
    let conversation = app
        .get_with_token("/messages?with=bob", &alice)
        .await
        .json();
    assert!(conversation["messages"][0]["read_at"].is_string());
    // Bob's own view of what he sent shows it was read.
    assert!(
        app.get_with_token("/messages?with=alice", &bob)
            .await
            .json()["messages"][0]["read_at"]
            .is_string()
    );
}

#[tokio::test]
async fn concurrent_writers_lose_and_duplicate_nothing() {
    let app = spawn_app().await;
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    app.register("inbox", e2e::PASSWORD).await;
    let mut tokens = Vec::new();
    for w in 0..WRITERS {
        tokens.push(app.signed_in_user(&format!("writer{w}")).await.1);
    }
    let app = &app;
    let writers = tokens.iter().enumerate().map(|(w, token)| async move {
        for i in 0..EACH {
            send(app, token, "inbox", &format!("w{w} m{i}"))
                .await
                .expect(201);
        }
    });
    futures::future::join_all(writers).await;
    let inbox = app.login("inbox", e2e::PASSWORD).await;
    let bodies: Vec<String> = all_pages(app, &inbox, "", 200)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies.len(), WRITERS * EACH);
    let unique: HashSet<&String> = bodies.iter().collect();
    assert_eq!(unique.len(), WRITERS * EACH);
    for w in 0..WRITERS {
        // Each writer's messages arrive in the order it sent them (newest first here).
        let mine: Vec<&String> = bodies
            .iter()
            .filter(|b| b.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..EACH).rev().map(|i| format!("w{w} m{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn no_acknowledged_message_is_lost_when_the_server_is_killed() {
    let mut app = spawn_app().await;
    app.register("sink", e2e::PASSWORD).await;
    let mut tokens = Vec::new();
    for w in 0..6 {
        tokens.push(app.signed_in_user(&format!("load{w}")).await.1);
    }
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::new();
    let url = app.url("/messages");
    let writers: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (client, url, acknowledged) = (client.clone(), url.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"to": "sink", "body": format!("load {i}")}))
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status() != 201 {
                        break;
                    }
                    let Ok(message) = response.json::<Value>().await else {
                        break;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(message["id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    app.spin.kill().await;
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load ran: {}",
        acknowledged.len()
    );

    app.restart().await;
    let sink = app.login("sink", e2e::PASSWORD).await;
    let stored: HashSet<String> = all_pages(&app, &sink, "", 200)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost",
        lost.len(),
        acknowledged.len()
    );
}

#[tokio::test]
async fn a_deleted_senders_messages_stay_readable_by_the_recipient() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    send(&app, &alice, "bob", "before I go").await.expect(201);
    app.send(
        app.request(reqwest::Method::DELETE, "/auth/users/alice")
            .bearer_auth(&alice),
    )
    .await
    .expect(204);
    let inbox = app
        .get_with_token("/messages", &bob)
        .await
        .expect(200)
        .json();
    assert_eq!(inbox["messages"][0]["from"], "alice");
    send(&app, &bob, "alice", "are you there?")
        .await
        .problem(404);
}
