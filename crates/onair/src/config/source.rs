//! Where in the config file a key or an error is, so a message can say `onair.toml:12:1`.
//!
//! toml reports byte ranges; an operator reads lines and columns. The file is parsed a second
//! time with spans ([`toml::de::DeTable`]) only when an error needs placing, so a valid file
//! costs nothing more.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A line and a column in the file, both from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The line and column of byte `offset` of `text` (past the end: the end).
pub fn location(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Where `dotted` (`rtmp.chunk_size`) is set in `text`: the span of its key. A key that is
/// not there is looked for without its last part (`dev.keys.channel` is found as the first
/// `[[dev.keys]]`), so the message points at least at its table.
pub fn key_span(text: &str, dotted: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let parts: Vec<&str> = dotted.split('.').collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| find(root.get_ref(), &parts[..n]))
}

fn find(table: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    if rest.is_empty() {
        return Some(key.span());
    }
    match value.get_ref() {
        DeValue::Table(inner) => find(inner, rest),
        DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
            DeValue::Table(inner) => find(inner, rest),
            _ => None,
        }),
        _ => None,
    }
}

/// The dotted key whose key or value holds byte `offset`, for errors that point into a value
/// (a wrong type) without naming its key.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    enclosing(root.get_ref(), offset, &mut path).then(|| path.join("."))
}

fn enclosing(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        let found = match value.get_ref() {
            // A table's own span may run over its comments; only its keys count.
            DeValue::Table(inner) => enclosing(inner, offset, path),
            DeValue::Array(items) if items.iter().any(|i| i.get_ref().is_table()) => {
                items.iter().any(|item| match item.get_ref() {
                    DeValue::Table(inner) => enclosing(inner, offset, path),
                    _ => false,
                })
            }
            _ => value.span().contains(&offset),
        };
        if found || key.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "shutdown_grace = \"2s\"\n\n[rtmp]\n# a comment\nchunk_size = 8192\n\n[[dev.keys]]\nchannel = \"démo\"\nkey = \"k\"\n";

    #[test]
    fn offsets_become_lines_and_columns() {
        assert_eq!(location(FILE, 0), Location { line: 1, column: 1 });
        let at = FILE.find("chunk_size").unwrap();
        assert_eq!(location(FILE, at), Location { line: 5, column: 1 });
        let at = FILE.find("8192").unwrap();
        assert_eq!(location(FILE, at).to_string(), "5:14");
        // Columns count characters: "é" is two bytes.
        let at = FILE.find("\"k\"").unwrap();
        assert_eq!(location(FILE, at).to_string(), "9:7");
        let at = FILE.find("mo\"").unwrap();
        assert_eq!(location(FILE, at).to_string(), "8:14");
        assert_eq!(location(FILE, usize::MAX).line, 10);
    }

    #[test]
    fn keys_are_found_where_they_are_set() {
        let line = |dotted: &str| key_span(FILE, dotted).map(|s| location(FILE, s.start).line);
        assert_eq!(line("shutdown_grace"), Some(1));
        assert_eq!(line("rtmp.chunk_size"), Some(5));
        assert_eq!(line("dev.keys.channel"), Some(8));
        assert_eq!(
            line("rtmp.listen"),
            Some(3),
            "an unset key points at its table"
        );
        assert_eq!(line("hub.max_lag"), None);
    }

    #[test]
    fn an_offset_inside_a_value_names_its_key() {
        assert_eq!(
            key_at(FILE, FILE.find("8192").unwrap()).as_deref(),
            Some("rtmp.chunk_size")
        );
        assert_eq!(
            key_at(FILE, FILE.find("\"k\"").unwrap()).as_deref(),
            Some("dev.keys.key")
        );
        assert_eq!(key_at(FILE, FILE.find("# a").unwrap()), None);
    }
}
