//! The domain layer: the app's rules and the storage that keeps them (accounts and their
//! authentication, the catalog, the log's tamper evidence, throttles). It uses the platform and
//! web layers.

pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod logs;
pub mod secrets;
pub mod text;
pub mod throttle;
