//! Access to Spin's key-value store, with expiry: Spin's store has no TTL, so values are
//! stored in an envelope with their expiry time and read back as absent once it has passed.
//! Remember that get-then-set is not atomic under Spin; nothing here pretends otherwise.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use spin_sdk::key_value::Store;

use crate::error::ApiError;

pub struct Kv {
    store: Store,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// Unix seconds after which the value is gone; absent for values that never expire.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expires: Option<i64>,
    value: T,
}

fn kv_error(action: &str, key: &str, error: spin_sdk::key_value::Error) -> ApiError {
    ApiError::unavailable(
        "the key-value store is unavailable; try again",
        format!("key-value {action} of {key:?} failed: {error:?}"),
    )
}

impl Kv {
    pub async fn open() -> Result<Self, ApiError> {
        let store = Store::open_default().await.map_err(|error| {
            ApiError::unavailable(
                "the key-value store is unavailable; try again",
                format!("the key-value store cannot be opened: {error:?}"),
            )
        })?;
        Ok(Self { store })
    }

    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
        self.store
            .get(key)
            .await
            .map_err(|error| kv_error("read", key, error))
    }

    pub async fn set_raw(&self, key: &str, value: &[u8]) -> Result<(), ApiError> {
        self.store
            .set(key, value)
            .await
            .map_err(|error| kv_error("write", key, error))
    }

    /// The value under `key`, or `None` if absent, expired or unreadable as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let Some(bytes) = self.get_raw(key).await? else {
            return Ok(None);
        };
        let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(&bytes) else {
            return Ok(None);
        };
        match envelope.expires {
            Some(expires) if expires <= crate::time::unix_seconds() => Ok(None),
            _ => Ok(Some(envelope.value)),
        }
    }

    /// Stores `value` under `key` until Unix second `expires` (or forever).
    pub async fn set<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expires: Option<i64>,
    ) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(&Envelope { expires, value }).map_err(ApiError::internal)?;
        self.set_raw(key, &bytes).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.store
            .delete(key)
            .await
            .map_err(|error| kv_error("delete", key, error))
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ApiError> {
        self.store
            .exists(key)
            .await
            .map_err(|error| kv_error("check", key, error))
    }
}
