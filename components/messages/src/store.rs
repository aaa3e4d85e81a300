//! Messages between users: the body rules, storage and the queries that page through them.
//! A user sees only messages they sent or received; everything else does not exist for them.

use serde::Serialize;
use shared::domain::accounts::{ACTIVE_USER_BY_KEY, username_key};
use shared::domain::text::{self, Lines};
use shared::platform::db::{self, Db, Param, Row};
use shared::web::ApiError;

/// 1 to 4,000 characters (Unicode scalar values) of text, not only whitespace, without control
/// characters other than line breaks and tabs, and without bidirectional overrides. Stored and
/// returned exactly as sent: no trimming, no normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_CHARS: usize = 4_000;

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().all(char::is_whitespace) {
            return Err("must not be empty".into());
        }
        Ok(Self(
            text::bounded(text, Self::MAX_CHARS, Lines::Multiple)?.to_owned(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Message {
    pub id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub created_at: String,
    pub read_at: Option<String>,
}

/// The columns a message is read from, named as the API names them (plus `seq`).
const COLUMNS: &str =
    "seq, id, sender_name AS \"from\", recipient_name AS \"to\", body, created_at, read_at";
const FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("from", "\"from\""),
    ("to", "\"to\""),
    ("body", "body"),
    ("created_at", "created_at"),
    ("read_at", "read_at"),
];

fn message(row: Row<'_>) -> anyhow::Result<Message> {
    Ok(Message {
        id: row.get("id")?,
        from: row.get("from")?,
        to: row.get("to")?,
        body: row.get("body")?,
        created_at: row.get("created_at")?,
        read_at: row.get("read_at")?,
    })
}

/// A user as a message endpoint.
#[derive(Debug, Clone)]
pub struct Participant {
    pub id: String,
    pub username: String,
}

/// The SQL for the key shared by both directions of a conversation, from a user id (`?1`) and a
/// users row (`u`): the two ids, sorted, joined with ':'.
const CONVERSATION_OF: &str =
    "CASE WHEN ?1 < u.id THEN ?1 || ':' || u.id ELSE u.id || ':' || ?1 END";

/// Sends `body` from `sender` to the account named `recipient` (any case) in one statement;
/// `None` when there is no such account.
pub async fn send(
    db: &Db,
    sender: &Participant,
    recipient: &str,
    body: &MessageBody,
) -> Result<Option<Message>, ApiError> {
    let id = shared::platform::ids::random_uuid();
    let created_at = shared::platform::time::now_rfc3339();
    let rows = db
        .query(
            &format!(
                "INSERT INTO messages (id, conversation, sender_id, sender_name, recipient_id, recipient_name, body, created_at)
                 SELECT ?3, {CONVERSATION_OF}, ?1, ?2, u.id, u.username, ?4, ?5
                 FROM users u WHERE u.username_key = ?6 AND u.deleted_at IS NULL
                 RETURNING recipient_id, recipient_name"
            ),
            [
                Param::Text(sender.id.clone()),
                Param::Text(sender.username.clone()),
                Param::Text(id.clone()),
                Param::Text(body.as_str().to_owned()),
                Param::Text(created_at.clone()),
                Param::Text(username_key(recipient)),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Message {
        id,
        from: sender.username.clone(),
        to: row.get("recipient_name")?,
        body: body.as_str().to_owned(),
        created_at,
        read_at: None,
    }))
}

/// A page of messages, newest first, and the cursor for the next one.
#[derive(Debug, Serialize)]
pub struct Page {
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// The `seq` of the message a cursor names, if the reader may see that message.
async fn cursor_position(db: &Db, reader_id: &str, cursor_id: &str) -> Result<i64, ApiError> {
    let rows = db
        .query(
            "SELECT seq FROM messages WHERE id = ?1 AND (sender_id = ?2 OR recipient_id = ?2)",
            [
                Param::Text(cursor_id.to_owned()),
                Param::Text(reader_id.to_owned()),
            ],
        )
        .await?;
    match rows.first() {
        Some(row) => Ok(row.get("seq")?),
        None => Err(ApiError::bad_query(
            "cursor",
            "is not a cursor returned by this API",
        )),
    }
}

fn page(mut messages: Vec<Message>, limit: i64) -> Result<Page, ApiError> {
    let next_cursor = if messages.len() as i64 > limit {
        messages.truncate(limit as usize);
        messages.last().map(|m| shared::web::cursor::encode(&m.id))
    } else {
        None
    };
    Ok(Page {
        messages,
        next_cursor,
    })
}

/// The conversation between `reader` and the account named `other` (any case), newest
/// first, in one statement; `None` when there is no such account.
pub async fn conversation(
    db: &Db,
    reader: &Participant,
    other: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Option<Page>, ApiError> {
    let before = match cursor {
        Some(id) => cursor_position(db, &reader.id, id).await?,
        None => i64::MAX,
    };
    let packed = db::json_array_of(FIELDS, "seq DESC");
    let active_user = ACTIVE_USER_BY_KEY.replace('?', "?2");
    // The conversation key is a scalar subquery, so the (conversation, seq) index serves the
    // page directly, newest first, whatever the conversation's length.
    let rows = db
        .query(
            &format!(
                "SELECT ({active_user}) AS other_id,
                        coalesce(({packed}
                                  FROM (SELECT {COLUMNS} FROM messages
                                        WHERE conversation = (SELECT {CONVERSATION_OF} FROM users u
                                                              WHERE u.id = ({active_user}))
                                          AND seq < ?3
                                        ORDER BY seq DESC LIMIT ?4)
                                  LIMIT 1), '[]') AS page"
            ),
            [
                Param::Text(reader.id.clone()),
                Param::Text(username_key(other)),
                Param::Integer(before),
                Param::Integer(limit + 1),
            ],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the page query returned no row")))?;
    if row.get::<Option<String>>("other_id")?.is_none() {
        return Ok(None);
    }
    let json: String = row.get("page")?;
    let messages: Vec<Message> = serde_json::from_str(&json).map_err(ApiError::internal)?;
    page(messages, limit).map(Some)
}

/// Every message to or from `reader`, newest first: two index range scans merged.
pub async fn inbox_and_outbox(
    db: &Db,
    reader: &Participant,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page, ApiError> {
    let before = match cursor {
        Some(id) => cursor_position(db, &reader.id, id).await?,
        None => i64::MAX,
    };
    let rows = db
        .query_json(
            &format!(
                "SELECT * FROM (
                     SELECT * FROM (SELECT {COLUMNS} FROM messages
                                    WHERE sender_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
                     UNION ALL
                     SELECT * FROM (SELECT {COLUMNS} FROM messages
                                    WHERE recipient_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
                 ) ORDER BY seq DESC LIMIT ?3"
            ),
            FIELDS,
            "seq DESC",
            [
                Param::Text(reader.id.clone()),
                Param::Integer(before),
                Param::Integer(limit + 1),
            ],
        )
        .await?;
    page(rows, limit)
}

/// One message, if `reader` sent or received it (otherwise it does not exist for them).
pub async fn find(db: &Db, reader_id: &str, id: &str) -> Result<Option<Message>, ApiError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM messages
                 WHERE id = ?1 AND (sender_id = ?2 OR recipient_id = ?2)"
            ),
            [
                Param::Text(id.to_owned()),
                Param::Text(reader_id.to_owned()),
            ],
        )
        .await?;
    Ok(rows.first().map(message).transpose()?)
}

/// Unread messages to `reader`, in all and per sender.
pub async fn unread(db: &Db, reader_id: &str) -> Result<Vec<(String, i64)>, ApiError> {
    let rows = db
        .query(
            "SELECT sender_name, count(*) AS n FROM messages
             WHERE recipient_id = ? AND read_at IS NULL
             GROUP BY sender_id ORDER BY sender_name",
            [Param::Text(reader_id.to_owned())],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.get("sender_name")?, row.get("n")?)))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(ApiError::internal)
}

/// Marks every unread message from the account named `sender` (any case) to `reader` as
/// read; returns how many, or `None` when there is no such account.
pub async fn mark_read(db: &Db, reader_id: &str, sender: &str) -> Result<Option<usize>, ApiError> {
    let Some(sender_id) = shared::domain::accounts::active_user_id(db, sender).await? else {
        return Ok(None);
    };
    // Counted in the same transaction as the update, on a connection no one else uses.
    let marked = db::transaction(async |db: &Db| -> Result<i64, ApiError> {
        db.execute(
            "UPDATE messages SET read_at = ?
             WHERE recipient_id = ? AND sender_id = ? AND read_at IS NULL",
            [
                Param::Text(shared::platform::time::now_rfc3339()),
                Param::Text(reader_id.to_owned()),
                Param::Text(sender_id.clone()),
            ],
        )
        .await?;
        Ok(db.query_integer("SELECT changes()", []).await?)
    })
    .await?;
    Ok(Some(marked as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key shared by both directions of a conversation.
    pub fn conversation_key(a: &str, b: &str) -> String {
        if a <= b {
            format!("{a}:{b}")
        } else {
            format!("{b}:{a}")
        }
    }

    #[test]
    fn bodies_are_checked_in_characters_and_kept_as_sent() {
        assert!(MessageBody::parse("").is_err());
        assert!(MessageBody::parse(" \n\t").is_err());
        assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "  hi  ");
        assert!(MessageBody::parse(&"é".repeat(4_000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4_001)).is_err());
        assert!(MessageBody::parse("👩‍👩‍👧 مرحبا\n\tשלום").is_ok());
        assert!(MessageBody::parse("nul \u{0}").is_err());
        assert!(MessageBody::parse("reversed \u{202E}txt").is_err());
    }

    #[test]
    fn both_directions_share_one_conversation_key() {
        assert_eq!(conversation_key("b", "a"), conversation_key("a", "b"));
        assert_ne!(conversation_key("a", "b"), conversation_key("a", "c"));
    }
}
