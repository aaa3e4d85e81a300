//! Rules for the free text people write (titles, descriptions, message bodies): bounded in
//! characters, and free of what only serves to deceive or break a display: NUL and other
//! control characters, and the bidirectional overrides and isolates that can make text read
//! differently from how it is stored ("Trojan Source").

/// Whether line breaks and tabs are allowed (multi-line text) or not (a title).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Single,
    Multiple,
}

/// `text` if it has at most `max_chars` characters (Unicode scalar values, not bytes) and none
/// of the forbidden ones.
pub fn bounded(text: &str, max_chars: usize, lines: Lines) -> Result<&str, String> {
    if text.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if let Some(bad) = text.chars().find(|c| is_forbidden(*c, lines)) {
        return Err(format!(
            "must not contain the character U+{:04X} (control characters and bidirectional overrides are not allowed)",
            u32::from(bad)
        ));
    }
    Ok(text)
}

fn is_forbidden(c: char, lines: Lines) -> bool {
    let line_break_or_tab = matches!(c, '\n' | '\r' | '\t');
    (c.is_control() && !(lines == Lines::Multiple && line_break_or_tab))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert!(bounded("éé", 2, Lines::Single).is_ok());
        assert!(bounded("ééé", 2, Lines::Single).is_err());
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_refused() {
        for bad in ["a\0b", "a\u{7}b", "a\u{202E}b", "a\u{2066}b", "a\u{85}b"] {
            assert!(bounded(bad, 100, Lines::Multiple).is_err(), "{bad:?}");
        }
        assert!(bounded("two\nlines\tand tabs", 100, Lines::Multiple).is_ok());
        assert!(bounded("two\nlines", 100, Lines::Single).is_err());
        assert!(bounded("emoji 🍜 and ümlauts", 100, Lines::Single).is_ok());
    }
}
