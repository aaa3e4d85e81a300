//! Property similarity. `POST /similarity` scores two properties with the ONNX model (run by
//! tract inside the component); `POST /similarity/search` finds the catalog listings most like
//! a property or like a listing.
//!
//! Scores are cached in the key-value store under the model's identity and a canonical form
//! of the pair, so equal inputs (in either order) hit the cache, a new model version never sees
//! an old score, and a cache hit never loads the model.

pub mod index;
pub mod model;

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::{Cell, RefCell};

    use serde::{Deserialize, Serialize};
    use serde_json::{Value, json};
    use shared::domain::auth::authenticate;
    use shared::domain::catalog::{Category, Currency, Item, PriceRange};
    use shared::platform::db::{self, Db, Param, placeholders};
    use shared::platform::kv::{Kv, KvStore};
    use shared::platform::{config, time};
    use shared::web::input::{JsonBody, any_text};
    use shared::{ApiError, Event, FieldError, PathParams, Reply, RequestCtx};
    use spin_sdk::http::Request;
    use spin_sdk::http_service;

    use crate::{index, model};

    const MAX_K: i64 = 50;
    /// Cache writes waiting per instance; more are dropped (the cache is best-effort, and every
    /// key-value write under Spin is an fsync behind one store-wide lock).
    const MAX_PENDING_CACHE_WRITES: usize = 64;

    shared::routes! {
        POST "/similarity" => score,
        POST "/similarity/search" => search,
    }

    #[http_service]
    async fn handle(request: Request) -> shared::web::Response {
        shared::serve("similarity", request, dispatch).await
    }

    /// Validates an optional property field of the body, reporting problems as
    /// `field.feature`; `Some(None)` when the field is absent.
    fn optional_property(body: &mut JsonBody, field: &str) -> Option<Option<Vec<f32>>> {
        let Some(value) = body.take(field).filter(|v| !v.is_null()) else {
            return Some(None);
        };
        match model::metadata().encode(&value) {
            Ok(row) => Some(Some(row)),
            Err(errors) => {
                for (feature, detail) in errors {
                    let name = if feature.is_empty() {
                        field.to_owned()
                    } else {
                        format!("{field}.{feature}")
                    };
                    body.reject(&name, detail);
                }
                None
            }
        }
    }

    /// Validates a required property field of the body.
    fn property(body: &mut JsonBody, field: &str) -> Option<Vec<f32>> {
        match optional_property(body, field) {
            Some(None) => {
                body.reject(field, "is required");
                None
            }
            other => other.flatten(),
        }
    }

    #[derive(Serialize, Deserialize)]
    struct CachedScore {
        model: String,
        score: f64,
    }

    /// How long a cached score is served: the `similarity_cache_ttl_seconds` variable.
    async fn cache_ttl_seconds() -> Result<i64, ApiError> {
        Ok(config::parse("similarity_cache_ttl_seconds", |s: &i64| *s > 0).await?)
    }

    /// The cache key: the model's identity and the two encoded properties in a fixed order.
    fn cache_key(model_id: &str, a: &[f32], b: &[f32]) -> String {
        let bytes = |row: &[f32]| {
            row.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let (first, second) = {
            let (a, b) = (bytes(a), bytes(b));
            if a <= b { (a, b) } else { (b, a) }
        };
        let mut material = model_id.as_bytes().to_vec();
        material.push(0);
        material.extend(first);
        material.push(0);
        material.extend(second);
        format!(
            "similarity:{}",
            shared::platform::crypto::hex_sha256(&material)
        )
    }

    thread_local! {
        static PENDING: RefCell<Vec<(String, CachedScore, i64)>> = const { RefCell::new(Vec::new()) };
        static WRITER_RUNNING: Cell<bool> = const { Cell::new(false) };
    }

    /// Queues a cache write for after the response; one writer per instance drains the queue.
    fn remember(key: String, value: CachedScore, expires: i64) {
        let queued = PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            if pending.len() < MAX_PENDING_CACHE_WRITES {
                pending.push((key, value, expires));
                true
            } else {
                false
            }
        });
        if queued && !WRITER_RUNNING.with(|running| running.replace(true)) {
            spin_sdk::wit_bindgen::spawn(async {
                while let Some((key, value, expires)) =
                    PENDING.with(|pending| pending.borrow_mut().pop())
                {
                    if let Ok(kv) = Kv::shared(KvStore::SimilarityCache).await {
                        let _ = kv.set(&key, &value, Some(expires)).await;
                    }
                }
                WRITER_RUNNING.with(|running| running.set(false));
            });
        }
    }

    async fn score(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
        authenticate(ctx).await?;
        let mut body = ctx.json_body().await?;
        let a = property(&mut body, "a");
        let b = property(&mut body, "b");
        let (a, b) = body.finish((a, b))?;
        let metadata = model::metadata();
        let model_id = metadata.id();
        let key = cache_key(&model_id, &a, &b);

        let cache = Kv::shared(KvStore::SimilarityCache).await?;
        let cached: Option<CachedScore> = cache.get(&key).await?;
        let (score, cached) = match cached.filter(|entry| entry.model == model_id) {
            Some(entry) => (entry.score, true),
            None => {
                let embeddings = model::embed(&[a, b]).map_err(ApiError::internal)?;
                let score = metadata.score(&embeddings[0], &embeddings[1]);
                let expires = time::unix_seconds() + cache_ttl_seconds().await?;
                let entry = CachedScore {
                    model: model_id.clone(),
                    score,
                };
                remember(key, entry, expires);
                (score, false)
            }
        };
        Ok(Reply::ok(
            &json!({ "score": score, "model": model_id, "cached": cached }),
        ))
    }

    /// A validated `POST /similarity/search` body.
    struct SearchRequest {
        item_id: Option<String>,
        property: Option<Vec<f32>>,
        k: usize,
        filter: index::Filter,
    }

    fn search_request(mut body: JsonBody) -> Result<SearchRequest, ApiError> {
        let item_id = body.optional_text("item_id", any_text);
        let property = optional_property(&mut body, "property");
        let k = body.optional("k", |v| match v.as_i64() {
            Some(k) if (1..=MAX_K).contains(&k) => Ok(k as usize),
            _ => Err(format!("must be a whole number from 1 to {MAX_K}")),
        });
        let category = body.optional_text("category", Category::parse);
        let currency = body.optional_text("currency", Currency::parse);
        let amount = |v: &Value| match v.as_i64() {
            Some(n) if n >= 0 => Ok(n),
            _ => Err("must be a whole, non-negative number of minor units".to_owned()),
        };
        let min_price = body.optional("min_price", amount);
        let max_price = body.optional("max_price", amount);
        if matches!(
            (&item_id, &property),
            (Some(Some(_)), Some(Some(_))) | (Some(None), Some(None))
        ) {
            body.reject("property", "give exactly one of property or item_id");
        }
        let price = PriceRange {
            currency: currency.flatten(),
            min: min_price.flatten(),
            max: max_price.flatten(),
        };
        for (field, detail) in price.problems() {
            body.reject(field, detail);
        }
        let (item_id, property, k, category, _, _, _) = body.finish((
            item_id, property, k, category, currency, min_price, max_price,
        ))?;
        Ok(SearchRequest {
            filter: index::Filter {
                category: category.map(|c| c.as_str().to_owned()),
                currency: price.currency.map(|c| c.code().to_owned()),
                min_price: price.min,
                max_price: price.max,
                exclude: item_id.clone(),
            },
            item_id,
            property,
            k: k.unwrap_or(10),
        })
    }

    /// The embedding to search around: the property's, or the listing's own.
    fn query_embedding(request: &SearchRequest) -> Result<Vec<f32>, ApiError> {
        match (&request.property, &request.item_id) {
            (Some(row), _) => Ok(model::embed(std::slice::from_ref(row))
                .map_err(ApiError::internal)?
                .remove(0)),
            (None, Some(id)) => index::embedding_of(id).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::body(
                    "item_id",
                    "is not a catalog listing whose attributes describe a property",
                )])
            }),
            (None, None) => unreachable!("search_request asks for one of them"),
        }
    }

    /// The nearest listings themselves, read in one query, in score order.
    async fn scored_listings(db: &Db, nearest: &[(String, f64)]) -> Result<Vec<Value>, ApiError> {
        if nearest.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<Item> = db
            .query_json(
                &format!(
                    "SELECT * FROM catalog_items WHERE id IN ({})",
                    placeholders(nearest.len())
                ),
                shared::domain::catalog::items::ITEM_JSON_FIELDS,
                "seq",
                nearest.iter().map(|(id, _)| Param::Text(id.clone())),
            )
            .await?;
        Ok(nearest
            .iter()
            .filter_map(|(id, score)| {
                let item = items.iter().find(|item| &item.id == id)?;
                Some(json!({ "score": score, "item": item }))
            })
            .collect())
    }

    async fn search(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
        authenticate(ctx).await?;
        let request = search_request(ctx.json_body().await?)?;
        let db = db::connect_for_long_reads().await?;
        index::update(&db).await?;
        let query = query_embedding(&request)?;
        let nearest = index::nearest(&query, request.k, &request.filter);
        let results = scored_listings(&db, &nearest).await?;
        let by = if request.item_id.is_some() {
            "item"
        } else {
            "property"
        };
        ctx.event(Event::info(
            "similarity.search",
            json!({ "by": by, "k": request.k, "results": results.len() }),
        ));
        Ok(Reply::ok(
            &json!({ "model": model::metadata().id(), "results": results }),
        ))
    }
}
