//! Access to Spin's key-value stores, with expiry: Spin's stores have no TTL, so values are
//! stored in an envelope with their expiry time and read back as absent once it has passed.
//! Get-then-set is not atomic under Spin; nothing here pretends otherwise.
//!
//! Each store is a label granted in spin.toml only to the components that use it, and mapped
//! to a backend (Spin's SQLite file, Redis, ...) by the runtime configuration.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use spin_sdk::key_value::Store;

use crate::platform::host;

/// The key-value stores of the app, by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvStore {
    /// Sessions (`session:<jti>`): written by login, read by everything that authenticates.
    Sessions,
    /// The token signing key the app generated for itself (login only).
    SigningKeys,
    /// The key of the log's hash chain the app generated for itself (every log writer).
    Audit,
    /// Cached similarity scores (similarity only).
    SimilarityCache,
}

impl KvStore {
    pub fn label(self) -> &'static str {
        match self {
            KvStore::Sessions => "sessions",
            KvStore::SigningKeys => "signing",
            KvStore::Audit => "audit",
            KvStore::SimilarityCache => "similarity_cache",
        }
    }
}

/// A store that failed, with what was being done.
#[derive(Debug, Clone)]
pub struct KvError(pub String);

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KvError {}

pub struct Kv {
    store: Store,
    label: &'static str,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// Unix seconds after which the value is gone; absent for values that never expire.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expires: Option<i64>,
    value: T,
}

thread_local! {
    /// The stores this instance opened. A store handle holds no transaction or cursor, so
    /// concurrent requests can share it; keeping it saves a host call per request.
    static OPEN: RefCell<Vec<(KvStore, Rc<Kv>)>> = const { RefCell::new(Vec::new()) };
}

impl Kv {
    /// This instance's handle on `store`, opened on first use.
    pub async fn shared(store: KvStore) -> Result<Rc<Self>, KvError> {
        let cached = OPEN.with(|open| {
            open.borrow()
                .iter()
                .find(|(opened, _)| *opened == store)
                .map(|(_, kv)| kv.clone())
        });
        if let Some(kv) = cached {
            return Ok(kv);
        }
        let kv = Rc::new(Self::open(store).await?);
        OPEN.with(|open| open.borrow_mut().push((store, kv.clone())));
        Ok(kv)
    }

    pub async fn open(store: KvStore) -> Result<Self, KvError> {
        host::note_blocking_call();
        let label = store.label();
        let store = Store::open(label).await.map_err(|error| {
            KvError(format!(
                "the key-value store {label:?} cannot be opened: {error:?}"
            ))
        })?;
        Ok(Self { store, label })
    }

    fn error(&self, action: &str, key: &str, error: spin_sdk::key_value::Error) -> KvError {
        KvError(format!(
            "key-value {action} of {key:?} in {:?} failed: {error:?}",
            self.label
        ))
    }

    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        host::note_blocking_call();
        self.store
            .get(key)
            .await
            .map_err(|error| self.error("read", key, error))
    }

    pub async fn set_raw(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        host::note_blocking_call();
        self.store
            .set(key, value)
            .await
            .map_err(|error| self.error("write", key, error))
    }

    /// The value under `key`, or `None` if absent, expired or unreadable as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        let Some(bytes) = self.get_raw(key).await? else {
            return Ok(None);
        };
        let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(&bytes) else {
            return Ok(None);
        };
        match envelope.expires {
            Some(expires) if expires <= crate::platform::time::unix_seconds() => Ok(None),
            _ => Ok(Some(envelope.value)),
        }
    }

    /// Stores `value` under `key` until Unix second `expires` (or forever).
    pub async fn set<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expires: Option<i64>,
    ) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(&Envelope { expires, value })
            .map_err(|error| KvError(format!("cannot encode {key:?}: {error}")))?;
        self.set_raw(key, &bytes).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        host::note_blocking_call();
        self.store
            .delete(key)
            .await
            .map_err(|error| self.error("delete", key, error))
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        host::note_blocking_call();
        self.store
            .exists(key)
            .await
            .map_err(|error| self.error("check", key, error))
    }
}
