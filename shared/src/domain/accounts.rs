//! Accounts: the rules for usernames, passwords and e-mail addresses, password hashing, roles,
//! and the user record.
//!
//! A username is never given out twice: deleting an account keeps its row as a tombstone (the
//! username, no password, no e-mail, no role), so nobody can register the name later and appear
//! as the author of what the old account wrote.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use serde::Serialize;

use crate::platform::db::{Db, Param, Row};
use crate::web::ApiError;

/// 3 to 32 characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit.
/// ASCII only, so no two usernames can look alike through Unicode confusables; compared
/// case-insensitively (`Alice` and `alice` are the same account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    pub fn parse(text: &str) -> Result<Self, String> {
        let length = text.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&length) {
            return Err(format!(
                "must be {} to {} characters",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("may contain only letters a-z, digits, '.', '_' and '-'".into());
        }
        if !text.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("must start with a letter or a digit".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that makes usernames unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Case-folds any username-like text for lookups, without validating it.
pub fn username_key(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// A new password: 10 to 128 characters (Unicode scalar values), not one of the common
/// passwords shipped in `shared/data/common-passwords.txt`, and not the username itself.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_LEN: usize = 10;
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Result<Self, String> {
        let length = text.chars().count();
        if length < Self::MIN_LEN {
            return Err(format!("must be at least {} characters", Self::MIN_LEN));
        }
        if length > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if is_common_password(text) {
            return Err("is too common: it appears in lists of leaked passwords".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the password is the username in disguise (case aside).
    pub fn matches_username(&self, username: &Username) -> bool {
        self.0.eq_ignore_ascii_case(username.as_str())
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

static COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// Whether `password` (case-insensitively) is in the shipped list, which is sorted.
pub fn is_common_password(password: &str) -> bool {
    // The list is immutable data: indexing it once per instance is safe to keep.
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| COMMON_PASSWORDS.lines().collect());
    list.binary_search(&password.to_lowercase().as_str())
        .is_ok()
}

/// An optional contact address: one `@`, a dotted domain, no spaces, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || Err("must be an e-mail address like name@example.org".to_owned());
        if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid();
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return invalid();
        };
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_ok {
            return invalid();
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The public view of a user: never the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct PublicUser {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: String,
}

/// A stored user, hash included (never serialised).
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub public: PublicUser,
    pub username_key: String,
    pub password_hash: String,
}

/// The SQL for the id of the active account with username key `?` (deleted ones excluded).
pub const ACTIVE_USER_BY_KEY: &str =
    "SELECT id FROM users WHERE username_key = ? AND deleted_at IS NULL";

const USER_COLUMNS: &str = "id, username, username_key, role, created_at, password_hash";

impl StoredUser {
    fn from_row(row: Row<'_>) -> anyhow::Result<Self> {
        let role: String = row.get("role")?;
        Ok(Self {
            public: PublicUser {
                id: row.get("id")?,
                username: row.get("username")?,
                role: Role::parse(&role).unwrap_or(Role::User),
                created_at: row.get("created_at")?,
            },
            username_key: row.get("username_key")?,
            password_hash: row.get("password_hash")?,
        })
    }

    /// The active (not deleted) account with this username key.
    pub async fn find_active(db: &Db, key: &str) -> Result<Option<Self>, ApiError> {
        let rows = db
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username_key = ? AND deleted_at IS NULL"
                ),
                [Param::Text(key.to_owned())],
            )
            .await?;
        rows.first()
            .map(StoredUser::from_row)
            .transpose()
            .map_err(ApiError::internal)
    }
}

/// Whether the username (any case) was ever registered, deleted accounts included.
pub async fn username_taken(db: &Db, username: &Username) -> Result<bool, ApiError> {
    Ok(db
        .query_integer(
            "SELECT count(*) FROM users WHERE username_key = ?",
            [Param::Text(username.key())],
        )
        .await?
        > 0)
}

/// Creates an account with the `user` role from an already computed password hash; 409 if the
/// username (in any case) was ever taken.
pub async fn create_user(
    db: &Db,
    username: &Username,
    password_hash: String,
    email: Option<&Email>,
) -> Result<PublicUser, ApiError> {
    let user = PublicUser {
        id: crate::platform::ids::random_uuid(),
        username: username.as_str().to_owned(),
        role: Role::User,
        created_at: crate::platform::time::now_rfc3339(),
    };
    let inserted = db
        .execute(
            "INSERT INTO users (id, username, username_key, email, password_hash, role, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'user', ?, ?)",
            [
                Param::Text(user.id.clone()),
                Param::Text(user.username.clone()),
                Param::Text(username.key()),
                email.map_or(Param::Null, |e| Param::Text(e.as_str().to_owned())),
                Param::Text(password_hash),
                Param::Text(user.created_at.clone()),
                Param::Text(user.created_at.clone()),
            ],
        )
        .await;
    match inserted {
        Ok(()) => Ok(user),
        Err(error) if error.is_unique_violation() => Err(username_is_taken(username)),
        Err(error) => Err(error.into()),
    }
}

pub fn username_is_taken(username: &Username) -> ApiError {
    ApiError::Conflict(format!("the username {username} is taken"))
}

/// Looks up the public profile of the active account `username` (any case).
pub async fn find_public_user(db: &Db, username: &str) -> Result<Option<PublicUser>, ApiError> {
    Ok(StoredUser::find_active(db, &username_key(username))
        .await?
        .map(|user| user.public))
}

/// The id of the active account `username` (any case), if there is one.
pub async fn active_user_id(db: &Db, username: &str) -> Result<Option<String>, ApiError> {
    let rows = db
        .query(ACTIVE_USER_BY_KEY, [Param::Text(username_key(username))])
        .await?;
    Ok(rows.first().map(|row| row.get("id")).transpose()?)
}

/// Turns the account into a tombstone: it can no longer sign in, and its username stays taken.
/// Returns whether an active account was deleted.
pub async fn delete_user(db: &Db, user_id: &str) -> Result<bool, ApiError> {
    let now = crate::platform::time::now_rfc3339();
    let rows = db
        .query(
            "UPDATE users SET deleted_at = ?1, updated_at = ?1, password_hash = '', email = NULL,
                              role = 'user'
             WHERE id = ?2 AND deleted_at IS NULL RETURNING id",
            [Param::Text(now), Param::Text(user_id.to_owned())],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Gives the active account `user_id` the role `role`; returns the role it had, or `None` when
/// there is no such active account.
pub async fn set_role(db: &Db, user_id: &str, role: Role) -> Result<Option<Role>, ApiError> {
    let rows = db
        .query(
            "UPDATE users SET role = ?1, updated_at = ?2
             WHERE id = ?3 AND deleted_at IS NULL
             RETURNING (SELECT role FROM users WHERE id = ?3) AS previous",
            [
                Param::Text(role.as_str().to_owned()),
                Param::Text(crate::platform::time::now_rfc3339()),
                Param::Text(user_id.to_owned()),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let previous: String = row.get("previous")?;
    Ok(Some(Role::parse(&previous).unwrap_or(Role::User)))
}

/// argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). The parameters are
/// recorded in each PHC string, so raising them later rehashes old passwords at their next
/// login.
pub fn current_hash_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

fn hasher(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &[u8]) -> Result<String, ApiError> {
    hasher(current_hash_params())
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| ApiError::internal(anyhow::anyhow!("argon2 failed: {error}")))
}

/// A PHC string for a password nobody knows, with the current parameters: verifying against
/// it costs what verifying a real user's password costs, so unknown usernames are not faster.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$FQcdoE5VYbPLYEv6CmXdjQ$ppWpGe4iw5rAPeqENiIO0UPiFgWzx/5Kd/lvtHwSJGM";

/// Whether `password` matches `stored` (a PHC string), with `stored`'s own parameters.
pub fn verify_password(password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The verifier takes its algorithm and parameters from the PHC string.
    Argon2::default().verify_password(password, &parsed).is_ok()
}

/// Whether `stored` was made with weaker (or simply other) parameters than the current ones.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let current = current_hash_params();
    let param = |name: &str| parsed.params.get_decimal(name);
    parsed.algorithm.as_str() != "argon2id"
        || param("m") != Some(current.m_cost())
        || param("t") != Some(current.t_cost())
        || param("p") != Some(current.p_cost())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_rules() {
        for good in ["ada", "Ada.Lovelace", "x_1-2", "123", &"a".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(33),
            "_ada",
            ".ada",
            "ad a",
            "adé",
            "ad@a",
            "",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Username::parse("Ada").unwrap().key(), "ada");
    }

    #[test]
    fn passwords_need_length_and_must_not_be_common() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert!(NewPassword::parse("password123").is_err());
        assert!(
            NewPassword::parse("PassWord123").is_err(),
            "case-insensitive"
        );
        assert!(NewPassword::parse("correct horse battery staple").is_ok());
        // Counted in characters, not bytes.
        assert!(NewPassword::parse("ééééééééé").is_err());
        assert!(NewPassword::parse("éééééééééé").is_ok());
    }

    #[test]
    fn the_common_password_list_is_sorted_for_binary_search() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() > 1_000);
        assert!(lines.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            lines
                .iter()
                .all(|line| line.chars().count() >= NewPassword::MIN_LEN)
        );
    }

    #[test]
    fn email_addresses_are_checked_loosely_but_sanely() {
        assert!(Email::parse("ada@example.org").is_ok());
        assert!(Email::parse("a.b+c@sub.example.co").is_ok());
        for bad in [
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "ada@-x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_verify_record_their_parameters_and_flag_weaker_ones() {
        let hash = hash_password(b"correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(b"correct horse battery staple", &hash));
        assert!(!verify_password(b"wrong", &hash));
        assert!(!needs_rehash(&hash));
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        assert!(needs_rehash(&weak));
        assert!(verify_password(b"pw", &weak));
        assert!(!needs_rehash(DUMMY_HASH));
        assert!(!verify_password(b"", DUMMY_HASH));
    }
}
