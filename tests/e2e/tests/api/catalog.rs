//! The catalog: CRUD, permissions, conditional requests, search, paging, events, bad input.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::helpers::*;

fn book(title: &str, amount: i64) -> Value {
    json!({
        "title": title,
        "description": format!("{title}: a novel"),
        "category": "book",
        "price": {"amount": amount, "currency": "EUR"},
        "stock": 3,
        "attributes": {"author": "Ursula K. Le Guin", "pages": 300, "signed": false},
    })
}

async fn create(app: &TestApp, token: &str, item: &Value) -> Value {
    app.post_json_with_token("/catalog/items", item, token)
        .await
        .expect(201)
        .json()
}

async fn patch(
    app: &TestApp,
    token: &str,
    id: &str,
    if_match: Option<&str>,
    body: &Value,
) -> e2e::Reply {
    let mut request = app
        .request(reqwest::Method::PATCH, &format!("/catalog/items/{id}"))
        .bearer_auth(token)
        .json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    app.send(request).await
}

async fn delete(app: &TestApp, token: &str, id: &str, if_match: Option<&str>) -> e2e::Reply {
    let mut request = app
        .request(reqwest::Method::DELETE, &format!("/catalog/items/{id}"))
        .bearer_auth(token);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    app.send(request).await
}

async fn search(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/catalog/items{query}"))
        .await
        .expect(200)
        .json()
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn items_are_created_read_updated_and_deleted() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let created = app
        .post_json_with_token("/catalog/items", &book("The Dispossessed", 1299), &seller)
        .await
        .expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let location = created.header("location").unwrap().to_owned();
    let item = created.json();
    assert_eq!(
        location,
        format!("/catalog/items/{}", item["id"].as_str().unwrap())
    );
    assert_eq!(item["owner"], "seller");
    assert_eq!(item["version"], 1);
    assert_eq!(item["price"], json!({"amount": 1299, "currency": "EUR"}));
    assert_eq!(item["attributes"]["pages"], 300);

    let read = app.get(&location).await.expect(200);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.json(), item);

    let id = item["id"].as_str().unwrap();
    let updated = patch(
        &app,
        &seller,
        id,
        Some("\"1\""),
        &json!({
            "price": {"amount": 999, "currency": "EUR"},
            "attributes": {"pages": null, "isbn": "978-0-06-051275-0"},
        }),
    )
    .await
    .expect(200);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    let updated = updated.json();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["price"]["amount"], 999);
    assert_eq!(
        updated["title"], "The Dispossessed",
        "untouched fields stay"
    );
    assert_eq!(
        updated["attributes"],
        json!({"author": "Ursula K. Le Guin", "signed": false, "isbn": "978-0-06-051275-0"})
    );

    delete(&app, &seller, id, None).await.expect(204);
    app.get(&location).await.problem(404);
    delete(&app, &seller, id, None).await.problem(404);
}

#[tokio::test]
async fn only_owners_and_admins_change_items_and_anyone_reads_them() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in_user("owner").await;
    let (_, other) = app.signed_in_user("other").await;
    let admin = app.admin("moderator").await;
    let id = create(&app, &owner, &book("Owned", 100)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.get(&format!("/catalog/items/{id}")).await.expect(200);
    patch(&app, &other, &id, Some("*"), &json!({"stock": 0}))
        .await
        .problem(403);
    delete(&app, &other, &id, None).await.problem(403);
    app.post_json_with_token(
        &format!("/catalog/items/{id}/stock"),
        &json!({"delta": 1}),
        &other,
    )
    .await
    .problem(403);
    app.send(
        app.request(reqwest::Method::PATCH, &format!("/catalog/items/{id}"))
            .header("if-match", "*")
            .json(&json!({"stock": 0})),
    )
    .await
    .problem(401);
    app.post_json("/catalog/items", &book("Anonymous", 1))
        .await
        .problem(401);

    patch(&app, &admin, &id, Some("*"), &json!({"stock": 9}))
        .await
        .expect(200);
    patch(&app, &owner, &id, Some("\"2\""), &json!({"stock": 8}))
        .await
        .expect(200);
    delete(&app, &admin, &id, None).await.expect(204);
}

#[tokio::test]
async fn conditional_requests_follow_etags() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let id = create(&app, &seller, &book("Versioned", 500)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/catalog/items/{id}");
    let conditional_get = |tag: &'static str| {
        app.send(
            app.request(reqwest::Method::GET, &path)
                .header("if-none-match", tag),
        )
    };
    for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        let reply = conditional_get(tag).await.expect(304);
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some("\"1\""));
    }
    conditional_get("\"2\"").await.expect(200);

    let missing = patch(&app, &seller, &id, None, &json!({"stock": 1}))
        .await
        .problem(428);
    assert!(missing["detail"].as_str().unwrap().contains("If-Match"));
    patch(&app, &seller, &id, Some("\"2\""), &json!({"stock": 1}))
        .await
        .problem(412);
    patch(&app, &seller, &id, Some("W/\"1\""), &json!({"stock": 1}))
        .await
        .problem(412);
    patch(&app, &seller, &id, Some("\"1\""), &json!({"stock": 1}))
        .await
        .expect(200);
    // The copy at version 1 is now stale.
    patch(&app, &seller, &id, Some("\"1\""), &json!({"stock": 2}))
        .await
        .problem(412);
    delete(&app, &seller, &id, Some("\"1\"")).await.problem(412);
    conditional_get("\"1\"").await.expect(200);
    conditional_get("\"2\"").await.expect(304);
    delete(&app, &seller, &id, Some("\"2\"")).await.expect(204);
}

#[tokio::test]
async fn concurrent_conditional_updates_let_exactly_one_win() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let id = create(&app, &seller, &book("Contended", 500)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (app, seller, id) = (&app, &seller, &id);
    let attempts = (0..8).map(|i| async move {
        patch(app, seller, id, Some("\"1\""), &json!({"stock": i}))
            .await
            .status
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 412).count(),
        7,
        "{statuses:?}"
    );
}

/// Concurrent reads served by one instance each get their own row, and a change committed on
/// one connection is what the next read sees, on whichever connection it runs.
#[tokio::test]
async fn concurrent_reads_get_their_own_items_and_see_each_committed_change() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let item = create(&app, &seller, &book(&format!("Volume {n}"), 100 + n)).await;
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    let (app, ids) = (&app, &ids);
    let reads = (0..96).map(|i| async move {
        let n = i % ids.len();
        let item = app
            .get(&format!("/catalog/items/{}", ids[n]))
            .await
            .expect(200)
            .json();
        (n, item)
    });
    for (n, item) in futures::future::join_all(reads).await {
        assert_eq!(item["id"], ids[n].as_str());
        assert_eq!(item["title"], format!("Volume {n}"));
    }
    for (n, id) in ids.iter().enumerate().take(4) {
        let revised = format!("Volume {n}, revised");
        patch(
            app,
            &seller,
            id,
            Some("\"1\""),
            &json!({ "title": revised }),
        )
        .await
        .expect(200);
        let item = app
            .get(&format!("/catalog/items/{id}"))
            .await
            .expect(200)
            .json();
        assert_eq!(item["title"], revised);
    }
}

#[tokio::test]
async fn stock_changes_are_atomic_and_never_go_negative() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let mut item = book("Scarce", 100);
    item["stock"] = json!(5);
    let id = create(&app, &seller, &item).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (app, seller, path) = (&app, &seller, &format!("/catalog/items/{id}/stock"));
    let takes = (0..10).map(|_| async move {
        app.post_json_with_token(path, &json!({"delta": -1}), seller)
            .await
            .status
    });
    let statuses = futures::future::join_all(takes).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        5,
        "{statuses:?}"
    );
    let item = app.get(&format!("/catalog/items/{id}")).await.json();
    assert_eq!(item["stock"], 0);
    assert_eq!(item["version"], 6);
    app.post_json_with_token(path, &json!({"delta": 0}), seller)
        .await
        .problem(422);
}

#[tokio::test]
async fn search_finds_by_text_and_every_filter() {
    let app = spawn_app().await;
    let (_, ada) = app.signed_in_user("ada").await;
    let (_, bob) = app.signed_in_user("bob").await;
    create(&app, &ada, &book("The Left Hand of Darkness", 1099)).await;
    create(&app, &ada, &book("The Dispossessed", 1299)).await;
    let mut signed = book("A Wizard of Earthsea", 2500);
    signed["attributes"]["signed"] = json!(true);
    signed["attributes"]["pages"] = json!(205);
    create(&app, &bob, &signed).await;
    create(
        &app,
        &bob,
        &json!({
            "title": "Pokémon plush", "description": "Soft toy, café colours", "category": "toy",
            "price": {"amount": 1500, "currency": "JPY"}, "stock": 10,
        }),
    )
    .await;
    create(&app, &bob, &json!({
        "title": "Cottage near the lake", "description": "3 rooms, garden", "category": "property",
        "price": {"amount": 25_000_000, "currency": "USD"},
        "attributes": {"rooms": 3, "city": "Ames"},
    }))
    .await;

    assert_eq!(
        titles(&search(&app, "?q=darkness").await),
        vec!["The Left Hand of Darkness"]
    );
    assert_eq!(
        titles(&search(&app, "?q=pokemon").await),
        vec!["Pokémon plush"],
        "diacritics fold"
    );
    assert_eq!(
        titles(&search(&app, "?q=CAFE").await),
        vec!["Pokémon plush"]
    );
    assert_eq!(
        search(&app, "?q=novel&category=book").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        search(&app, "?q=novel&category=toy").await["items"],
        json!([])
    );
    assert_eq!(
        titles(&search(&app, "?q=garden&category=property").await),
        vec!["Cottage near the lake"]
    );
    assert_eq!(
        search(&app, "?q=property").await["items"],
        json!([]),
        "q searches titles and descriptions, not categories"
    );
    assert_eq!(
        titles(
            &search(
                &app,
                "?category=book&currency=EUR&min_price=1100&max_price=2500"
            )
            .await
        ),
        vec!["A Wizard of Earthsea", "The Dispossessed"]
    );
    assert_eq!(
        titles(&search(&app, "?currency=EUR&sort=price").await),
        vec![
            "The Left Hand of Darkness",
            "The Dispossessed",
            "A Wizard of Earthsea"
        ]
    );
    assert_eq!(
        titles(&search(&app, "?currency=EUR&sort=-price").await),
        vec![
            "A Wizard of Earthsea",
            "The Dispossessed",
            "The Left Hand of Darkness"
        ]
    );
    assert_eq!(
        titles(&search(&app, "?owner=ADA&sort=newest").await),
        vec!["The Dispossessed", "The Left Hand of Darkness"]
    );
    assert_eq!(
        titles(&search(&app, "?attr.signed=true").await),
        vec!["A Wizard of Earthsea"]
    );
    assert_eq!(
        titles(&search(&app, "?attr.pages=205").await),
        vec!["A Wizard of Earthsea"]
    );
    assert_eq!(
        titles(&search(&app, "?attr.rooms=3&attr.city=Ames").await),
        vec!["Cottage near the lake"]
    );
    assert_eq!(search(&app, "?attr.city=Boston").await["items"], json!([]));
    assert_eq!(search(&app, "").await["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        titles(&search(&app, "?limit=1").await),
        vec!["Cottage near the lake"],
        "newest first by default"
    );

    for bad in [
        "?q=%20!!",
        "?min_price=100",
        "?currency=XXX1",
        "?min_price=-1&currency=EUR",
        "?min_price=9&max_price=1&currency=EUR",
        "?sort=cheapest",
        "?sort=relevance",
        "?limit=0",
        "?limit=101",
        "?cursor=abc",
        "?attr.bad%20key=1",
        "?unknown=1",
    ] {
        app.get(&format!("/catalog/items{bad}")).await.problem(400);
    }
}

#[tokio::test]
async fn pages_stay_stable_while_items_are_added() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let mut expected_newest = Vec::new();
    for i in 0..23 {
        let item = create(
            &app,
            &seller,
            &book(&format!("Volume {i:02}"), 100 + (i * 37) % 11),
        )
        .await;
        expected_newest.push(item["id"].clone());
    }
    expected_newest.reverse();
    for (sort, expected) in [("newest", expected_newest.clone()), ("price", Vec::new())] {
        let first = search(&app, &format!("?sort={sort}&currency=EUR&limit=5")).await;
        let mut seen: Vec<Value> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        // Items added mid-way never show up in the later pages of a search already under way.
        create(&app, &seller, &book("Late arrival", 50)).await;
        create(&app, &seller, &book("Late arrival", 200)).await;
        let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
        while let Some(c) = cursor {
            let page = search(
                &app,
                &format!("?sort={sort}&currency=EUR&limit=5&cursor={c}"),
            )
            .await;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].clone()),
            );
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        let unique: HashSet<String> = seen.iter().map(|v| v.to_string()).collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: no duplicates");
        if sort == "newest" {
            assert_eq!(
                seen, expected,
                "newest: exactly the items that existed, in order"
            );
        } else {
            // Price order: ascending amounts; late arrivals above the cursor may appear (their
            // place is later in the order), the originals all appear exactly once.
            for id in &expected_newest {
                assert!(seen.contains(id), "price: every original item");
            }
        }
    }
    let cursor = search(&app, "?sort=newest&limit=5").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!(
        "/catalog/items?sort=price&currency=EUR&cursor={cursor}"
    ))
    .await
    .problem(400);
}

#[tokio::test]
async fn relevance_pages_cover_every_match_once() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    for i in 0..12 {
        let words = "dragon ".repeat(1 + i % 4);
        create(&app, &seller, &json!({
            "title": format!("Tale {i}"), "description": format!("{words} story"), "category": "book",
            "price": {"amount": 100, "currency": "EUR"},
        }))
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?q=dragon&limit=5&cursor={c}"),
            None => "?q=dragon&limit=5".to_owned(),
        };
        let page = search(&app, &query).await;
        seen.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 12);
}

#[tokio::test]
async fn categories_are_counted() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    create(&app, &seller, &book("One", 1)).await;
    create(&app, &seller, &book("Two", 2)).await;
    let mut toy = book("Toy", 3);
    toy["category"] = json!("toy");
    create(&app, &seller, &toy).await;
    let categories = app.get("/catalog/categories").await.expect(200).json();
    assert_eq!(
        categories,
        json!({"categories": [{"category": "book", "count": 2}, {"category": "toy", "count": 1}]})
    );
}

#[tokio::test]
async fn events_record_every_change_in_order_even_with_concurrent_writers() {
    let app = spawn_app().await;
    let mut sellers = Vec::new();
    for s in 0..4 {
        sellers.push(app.signed_in_user(&format!("seller{s}")).await.1);
    }
    let app = &app;
    let work = sellers.iter().enumerate().map(|(s, token)| async move {
        let mut ids = Vec::new();
        for i in 0..5 {
            let item = create(app, token, &book(&format!("S{s} item {i}"), 100)).await;
            let id = item["id"].as_str().unwrap().to_owned();
            patch(app, token, &id, Some("\"1\""), &json!({"stock": 7}))
                .await
                .expect(200);
            ids.push(id);
        }
        delete(app, token, &ids[0], None).await.expect(204);
    });
    futures::future::join_all(work).await;

    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(&format!("/catalog/events?after={after}&limit=7"))
            .await
            .expect(200)
            .json();
        let batch = page["events"].as_array().unwrap().clone();
        if batch.is_empty() {
            break;
        }
        after = page["last_event_id"].as_i64().unwrap();
        events.extend(batch);
    }
    // 20 creations, 20 updates with a stock change each, 4 deletions.
    assert_eq!(events.len(), 20 + 40 + 4);
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "strictly increasing ids"
    );
    let mut versions: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for event in &events {
        versions
            .entry(event["item_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                event["type"].as_str().unwrap().to_owned(),
                event["item_version"].as_i64().unwrap(),
            ));
    }
    assert_eq!(versions.len(), 20);
    for history in versions.values() {
        assert_eq!(history[0], ("item.created".to_owned(), 1));
        assert_eq!(history[1], ("item.updated".to_owned(), 2));
        assert_eq!(history[2], ("item.stock_changed".to_owned(), 2));
        if let Some(last) = history.get(3) {
            assert_eq!(last.0, "item.deleted");
        }
    }
    let replay_from_middle = app
        .get(&format!("/catalog/events?after={}", ids[9]))
        .await
        .json();
    assert_eq!(replay_from_middle["events"][0]["id"], ids[10]);
}

#[tokio::test]
async fn a_page_of_events_stops_once_it_holds_256_kib_of_item_data() {
    const PAGE_BYTES: usize = 256 * 1024;
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    // Items near the size limits: about 21 KB of data per event, so 16 of them are two pages.
    for i in 0..16 {
        let mut item = book(&format!("Large {i}"), 100);
        item["description"] = json!("a long description ".repeat(263).trim_end());
        item["attributes"] = json!({ "notes": "n".repeat(16_000) });
        create(&app, &seller, &item).await;
    }
    let data_bytes = |events: &[Value]| -> usize {
        events
            .iter()
            .map(|event| serde_json::to_string(&event["data"]).unwrap().len())
            .sum()
    };

    let first = app
        .get("/catalog/events?after=0&limit=1000")
        .await
        .expect(200)
        .json();
    let first = first["events"].as_array().unwrap().clone();
    assert!((1..16).contains(&first.len()), "{} events", first.len());
    let (last, before_last) = first.split_last().unwrap();
    assert!(
        data_bytes(before_last) < PAGE_BYTES,
        "the last event started below the cut"
    );
    assert!(
        data_bytes(&first) >= PAGE_BYTES,
        "the next event would start past the cut"
    );

    let after = last["id"].as_i64().unwrap();
    let rest = app
        .get(&format!("/catalog/events?after={after}&limit=1000"))
        .await
        .expect(200)
        .json();
    let rest = rest["events"].as_array().unwrap();
    assert_eq!(first.len() + rest.len(), 16);
    assert_eq!(rest[0]["id"].as_i64().unwrap(), after + 1);
}

#[tokio::test]
async fn invalid_items_get_a_422_naming_each_field() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let base = book("Valid", 100);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"price": {"amount": -1, "currency": "EUR"}}), "price"),
        (
            json!({"price": {"amount": 9.99, "currency": "EUR"}}),
            "price",
        ),
        (
            json!({"price": {"amount": 100, "currency": "ZZZ"}}),
            "price",
        ),
        (json!({"price": 100}), "price"),
        (json!({"stock": -3}), "stock"),
        (json!({"stock": 1.5}), "stock"),
        (json!({"attributes": [1, 2, 3]}), "attributes"),
        (json!({"attributes": "author=x"}), "attributes"),
        (json!({"attributes": {"has space": 1}}), "attributes"),
        (
            json!({"attributes": {"blob": "x".repeat(20_000)}}),
            "attributes",
        ),
        (json!({"title": ""}), "title"),
        (json!({"title": "t".repeat(201)}), "title"),
        (json!({"description": "d".repeat(5_001)}), "description"),
        (json!({"category": "Books"}), "category"),
        (json!({"owner": "someone-else"}), "owner"),
        (json!({"version": 9}), "version"),
    ];
    for (change, field) in cases {
        let mut body = base.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let problem = app
            .post_json_with_token("/catalog/items", &body, &seller)
            .await
            .problem(422);
        let fields = error_fields(&problem);
        assert_eq!(fields, vec![field], "{change}");
    }
    let id = create(&app, &seller, &base).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    patch(&app, &seller, &id, Some("*"), &json!({"attributes": ["x"]}))
        .await
        .problem(422);
    patch(
        &app,
        &seller,
        &id,
        Some("*"),
        &json!({"price": {"amount": -5, "currency": "EUR"}}),
    )
    .await
    .problem(422);
    assert_eq!(
        app.get(&format!("/catalog/items/{id}")).await.json()["version"],
        1,
        "nothing stored"
    );
    app.get("/catalog/items/no-such-id").await.problem(404);
}
