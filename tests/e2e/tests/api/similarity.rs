//! Property similarity: parity with the training script, symmetry, validation, the score cache
//! and nearest-listing search over the catalog.

use serde_json::{Value, json};

use crate::helpers::*;

fn reference(name: &str) -> Value {
    let path = workspace_root().join("models").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The properties of the listings the training script's reference searches run over.
fn reference_listings() -> Vec<Value> {
    reference("reference-search.json")["listings"]
        .as_array()
        .unwrap()
        .clone()
}

async fn score(app: &TestApp, token: &str, a: &Value, b: &Value) -> Value {
    app.post_json_with_token("/similarity", &json!({"a": a, "b": b}), token)
        .await
        .expect(200)
        .json()
}

#[tokio::test]
async fn wasm_scores_match_the_training_scripts_reference_scores() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("appraiser").await;
    let reference = reference("reference-scores.json");
    let tolerance = reference["tolerance"].as_f64().unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (index, case) in cases.iter().enumerate() {
        let body = score(&app, &token, &case["a"], &case["b"]).await;
        assert_eq!(body["model"], reference["model"]);
        let got = body["score"].as_f64().unwrap();
        let expected = case["score"].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= tolerance,
            "case {index}: {got} vs {expected}"
        );
        assert!((0.0..=1.0).contains(&got));
    }
}

#[tokio::test]
async fn scores_are_symmetric_and_a_property_is_most_like_itself() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("appraiser").await;
    let listings = reference_listings();
    let (a, b, c) = (&listings[0], &listings[1], &listings[2]);
    let ab = score(&app, &token, a, b).await["score"].as_f64().unwrap();
    let ba = score(&app, &token, b, a).await["score"].as_f64().unwrap();
    assert_eq!(ab, ba);
    let aa = score(&app, &token, a, a).await["score"].as_f64().unwrap();
    let ac = score(&app, &token, a, c).await["score"].as_f64().unwrap();
    assert!(aa >= ab && aa >= ac, "identical {aa} vs {ab}, {ac}");
}

#[tokio::test]
async fn equal_inputs_hit_the_cache_and_another_model_versions_entry_is_ignored() {
    // The cache in a file, to edit an entry behind the app's back.
    let app = spawn_app_with(|mut config| {
        let path = config.state_dir.join("file-runtime-config.toml");
        std::fs::create_dir_all(&config.state_dir).unwrap();
        std::fs::write(&path, e2e::file_runtime_config(&config.state_dir)).unwrap();
        config.runtime_config = Some(path);
        config
    })
    .await;
    let (_, token) = app.signed_in_user("appraiser").await;
    let listings = reference_listings();
    let (a, b) = (&listings[3], &listings[4]);
    let first = score(&app, &token, a, b).await;
    assert_eq!(first["cached"], false);
    // The score is cached just after the response; either order of the pair hits it.
    let cached = app
        .eventually(|| async {
            let reply = score(&app, &token, b, a).await;
            (reply["cached"] == true).then_some(reply)
        })
        .await;
    assert_eq!(cached["score"], first["score"]);

    // An entry written by another model version under the same key is never served.
    let kv = rusqlite::Connection::open(app.config.kv_file("similarity_cache")).unwrap();
    let (key, value): (String, Vec<u8>) = kv
        .query_row(
            "SELECT key, value FROM spin_key_value WHERE key LIKE 'similarity:%'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let mut entry: Value = serde_json::from_slice(&value).unwrap();
    entry["value"]["model"] = json!("ames-similarity@0.0.1");
    entry["value"]["score"] = json!(0.123);
    kv.execute(
        "UPDATE spin_key_value SET value = ? WHERE key = ?",
        rusqlite::params![serde_json::to_vec(&entry).unwrap(), key],
    )
    .unwrap();
    let recomputed = score(&app, &token, a, b).await;
    assert_eq!(recomputed["cached"], false);
    assert_eq!(recomputed["score"], first["score"]);
}

#[tokio::test]
async fn invalid_properties_get_a_422_naming_the_field() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("appraiser").await;
    let good = reference_listings()[0].clone();
    let mut missing = good.clone();
    let required = reference_required_field();
    missing.as_object_mut().unwrap().remove(&required);
    let mut negative = good.clone();
    negative["living_area"] = json!(-5);
    let mut unknown_category = good.clone();
    unknown_category["neighborhood"] = json!("Atlantis");
    let mut extra = good.clone();
    extra["swimming_pool"] = json!(true);
    for (a, field) in [
        (missing, format!("a.{required}")),
        (negative, "a.living_area".to_owned()),
        (unknown_category, "a.neighborhood".to_owned()),
        (extra, "a.swimming_pool".to_owned()),
        (json!("a house"), "a".to_owned()),
    ] {
        let problem = app
            .post_json_with_token("/similarity", &json!({"a": a, "b": good}), &token)
            .await
            .problem(422);
        let fields = error_fields(&problem);
        assert!(fields.contains(&field.as_str()), "{field}: {fields:?}");
    }
    let problem = app
        .post_json_with_token("/similarity", &json!({"a": good}), &token)
        .await
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "b");
    app.post_json("/similarity", &json!({"a": good, "b": good}))
        .await
        .problem(401);
}

/// The name of one required feature, from the model's metadata.
fn reference_required_field() -> String {
    let metadata = reference("ames-similarity.json");
    metadata["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|feature| feature["required"] == true)
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Seeds the reference listings as catalog items and returns their ids, in reference order.
async fn seed_listings(app: &TestApp, token: &str) -> Vec<String> {
    let listings = reference_listings();
    let mut ids = Vec::new();
    for (index, property) in listings.iter().enumerate() {
        let item = app
            .post_json_with_token(
                "/catalog/items",
                &json!({
                    "title": format!("Listing {index}"),
                    "category": "property",
                    "price": {"amount": 15_000_000 + index as i64 * 100_000, "currency": "USD"},
                    "attributes": property,
                }),
                token,
            )
            .await
            .expect(201)
            .json();
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn search_returns_the_known_nearest_listings() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("agent").await;
    let ids = seed_listings(&app, &token).await;
    // Items that are not properties never show up.
    app.post_json_with_token(
        "/catalog/items",
        &json!({"title": "A book", "category": "book", "price": {"amount": 1, "currency": "USD"}}),
        &token,
    )
    .await
    .expect(201);
    let reference = reference("reference-search.json");
    for query in reference["queries"].as_array().unwrap() {
        let expected: Vec<&String> = query["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|index| &ids[index.as_u64().unwrap() as usize])
            .collect();
        let body = app
            .post_json_with_token(
                "/similarity/search",
                &json!({"property": query["property"], "k": 5}),
                &token,
            )
            .await
            .expect(200)
            .json();
        let got: Vec<&str> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, expected.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let scores: Vec<f64> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(
            scores.windows(2).all(|pair| pair[0] >= pair[1]),
            "{scores:?}"
        );
    }
}

#[tokio::test]
async fn search_by_listing_follows_catalog_changes_and_filters() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("agent").await;
    let ids = seed_listings(&app, &token).await;
    let search = |body: Value| {
        let (app, token) = (&app, &token);
        async move {
            app.post_json_with_token("/similarity/search", &body, token)
                .await
                .expect(200)
                .json()
        }
    };
    let by_item = search(json!({"item_id": ids[0], "k": 50})).await;
    let results = by_item["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        ids.len() - 1,
        "every other listing, not itself"
    );
    assert!(results.iter().all(|r| r["item"]["id"] != ids[0]));

    // A deleted listing disappears; a price filter applies.
    let nearest = results[0]["item"]["id"].as_str().unwrap().to_owned();
    app.send(
        app.request(
            reqwest::Method::DELETE,
            &format!("/catalog/items/{nearest}"),
        )
        .bearer_auth(&token),
    )
    .await
    .expect(204);
    let after = search(json!({"item_id": ids[0], "k": 50})).await;
    assert!(
        after["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["item"]["id"] != nearest.as_str())
    );
    let cheap =
        search(json!({"item_id": ids[0], "k": 50, "currency": "USD", "max_price": 15_500_000}))
            .await;
    assert!(
        cheap["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["item"]["price"]["amount"].as_i64().unwrap() <= 15_500_000)
    );
    assert!(!cheap["results"].as_array().unwrap().is_empty());

    let problem = app
        .post_json_with_token("/similarity/search", &json!({"k": 5}), &token)
        .await
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "property");
    app.post_json_with_token("/similarity/search", &json!({"item_id": "nope"}), &token)
        .await
        .problem(422);
    app.post_json_with_token(
        "/similarity/search",
        &json!({"item_id": ids[1], "k": 51}),
        &token,
    )
    .await
    .problem(422);
}
