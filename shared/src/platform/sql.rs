//! Splits a SQL script into single statements, because Spin's SQLite runs exactly one statement
//! per `execute`. The boundaries are the ones `sqlite3_complete()` finds: semicolons outside
//! strings, quoted identifiers and comments, except inside a `CREATE TRIGGER ... END` body.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Semi,
    Space,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// `sqlite3_complete`'s states: a statement ends when a `;` takes the machine back to `START`.
const START: usize = 1;

/// State transitions, rows by state (invalid, start, normal, explain, create, trigger, semi,
/// end), columns by token in the order of [`Token`].
const TRANSITIONS: [[usize; 8]; 8] = [
    [1, 0, 2, 3, 4, 2, 2, 2],
    [1, 1, 2, 3, 4, 2, 2, 2],
    [1, 2, 2, 2, 2, 2, 2, 2],
    [1, 3, 3, 2, 4, 2, 2, 2],
    [1, 4, 2, 2, 2, 4, 5, 2],
    [6, 5, 5, 5, 5, 5, 5, 5],
    [6, 6, 5, 5, 5, 5, 5, 7],
    [1, 7, 5, 5, 5, 5, 5, 5],
];

fn column(token: Token) -> usize {
    match token {
        Token::Semi => 0,
        Token::Space => 1,
        Token::Other => 2,
        Token::Explain => 3,
        Token::Create => 4,
        Token::Temp => 5,
        Token::Trigger => 6,
        Token::End => 7,
    }
}

fn keyword(word: &str) -> Token {
    match word.to_ascii_uppercase().as_str() {
        "EXPLAIN" => Token::Explain,
        "CREATE" => Token::Create,
        "TEMP" | "TEMPORARY" => Token::Temp,
        "TRIGGER" => Token::Trigger,
        "END" => Token::End,
        _ => Token::Other,
    }
}

/// Reads the token starting at byte `start`; returns it and the byte just after it.
fn next_token(sql: &str, start: usize) -> (Token, usize) {
    let bytes = sql.as_bytes();
    let first = bytes[start];
    let end_of = |closing: u8| {
        bytes[start + 1..]
            .iter()
            .position(|&b| b == closing)
            .map_or(bytes.len(), |i| start + 1 + i + 1)
    };
    match first {
        b';' => (Token::Semi, start + 1),
        b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => (Token::Space, start + 1),
        b'-' if bytes.get(start + 1) == Some(&b'-') => {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| start + i + 1);
            (Token::Space, end)
        }
        b'/' if bytes.get(start + 1) == Some(&b'*') => {
            let end = sql[start + 2..]
                .find("*/")
                .map_or(bytes.len(), |i| start + 2 + i + 2);
            (Token::Space, end)
        }
        // Doubled quotes inside a string read as two adjacent strings: same token class.
        b'\'' | b'"' | b'`' => (Token::Other, end_of(first)),
        b'[' => (Token::Other, end_of(b']')),
        b if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 => {
            let end = bytes[start..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80))
                .map_or(bytes.len(), |i| start + i);
            (keyword(&sql[start..end]), end)
        }
        _ => {
            let width = sql[start..].chars().next().map_or(1, char::len_utf8);
            (Token::Other, start + width)
        }
    }
}

/// The statements of `sql`, each without its terminating semicolon and surrounding space.
/// Comment-only or empty pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut state = 0;
    let mut statement_start = 0;
    let mut has_content = false;
    let mut position = 0;
    while position < sql.len() {
        let (token, next) = next_token(sql, position);
        if token != Token::Space && token != Token::Semi {
            has_content = true;
        }
        state = TRANSITIONS[state][column(token)];
        if token == Token::Semi && state == START {
            if has_content {
                statements.push(sql[statement_start..position].trim());
            }
            statement_start = next;
            has_content = false;
        }
        position = next;
    }
    if has_content {
        statements.push(sql[statement_start..].trim());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_statements_split_on_semicolons() {
        assert_eq!(
            split_statements("CREATE TABLE a (x);\nINSERT INTO a VALUES (1);"),
            vec!["CREATE TABLE a (x)", "INSERT INTO a VALUES (1)"]
        );
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let sql = "INSERT INTO t VALUES ('a;b', \"c;d\", [e;f], `g;h`); -- one; two\n/* x; y */ SELECT 1;";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("`g;h`)"));
        assert!(statements[1].ends_with("SELECT 1"));
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN
                     UPDATE b SET n = CASE WHEN n > 0 THEN n + 1 ELSE 1 END;
                     DELETE FROM c;
                   END;
                   CREATE TEMP TRIGGER u AFTER DELETE ON a BEGIN SELECT 1; END;
                   SELECT 2;";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(statements[0].starts_with("CREATE TRIGGER t"));
        assert!(statements[0].ends_with("END"));
        assert!(statements[1].starts_with("CREATE TEMP TRIGGER u"));
        assert_eq!(statements[2], "SELECT 2");
    }

    #[test]
    fn comment_only_pieces_and_missing_final_semicolon() {
        assert_eq!(
            split_statements("-- header\n;\n SELECT 1"),
            vec!["SELECT 1"]
        );
        assert!(split_statements("  -- nothing\n/* at all */").is_empty());
    }

    #[test]
    fn doubled_quotes_inside_strings() {
        assert_eq!(
            split_statements("SELECT 'it''s; fine'; SELECT 2"),
            vec!["SELECT 'it''s; fine'", "SELECT 2"]
        );
    }
}
