//! Input rules of the REST API. Each check names the field it refuses, and all of a request's
//! problems are reported at once.

use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::{ApiError, FieldError};
use crate::channel::is_valid_slug;

/// Login names: 3–32 of `[A-Za-z0-9_.-]`.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Passwords: 8–128 characters. The upper bound keeps one login's hashing cost bounded.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Channel titles: 1–140 characters.
pub const TITLE_LEN: std::ops::RangeInclusive<usize> = 1..=140;
/// Longest category, in characters.
pub const CATEGORY_MAX: usize = 64;
/// Most tags on a channel.
pub const TAGS_MAX: usize = 10;
/// Each tag: 1–32 characters.
pub const TAG_LEN: std::ops::RangeInclusive<usize> = 1..=32;
/// Longest stream key label, in characters.
pub const LABEL_MAX: usize = 64;
/// Largest paging offset: deeper pages are a scan the database should not be asked for.
pub const OFFSET_MAX: u32 = 1_000_000;
/// Largest page.
pub const LIMIT_MAX: u32 = 100;
/// The page size when none is asked for.
pub const LIMIT_DEFAULT: u32 = 20;
/// Longest user search string, in characters.
pub const SEARCH_MAX: usize = 64;
/// Longest directory search text, in characters.
pub const QUERY_MAX: usize = 100;
/// Shortest stream key lifetime that may be asked for, in seconds.
pub const KEY_TTL_MIN: u64 = 60;
/// Longest stream key lifetime that may be asked for, in seconds (ten years).
pub const KEY_TTL_MAX: u64 = 10 * 366 * 24 * 3600;

/// Collects field errors; [`Checks::finish`] turns them into one 400.
#[derive(Debug, Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

impl Checks {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.errors.push(FieldError::new(field, message));
        }
        self
    }

    /// A login name for a new account.
    pub fn username(&mut self, field: &str, name: &str) -> &mut Self {
        let ok = USERNAME_LEN.contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        self.check(
            ok,
            field,
            "must be 3 to 32 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
        )
    }

    /// A password for a new account.
    pub fn password(&mut self, field: &str, password: &str) -> &mut Self {
        self.check(
            PASSWORD_LEN.contains(&password.chars().count()),
            field,
            "must be 8 to 128 characters",
        )
    }

    /// A channel slug.
    pub fn slug(&mut self, field: &str, slug: &str) -> &mut Self {
        self.check(
            is_valid_slug(slug),
            field,
            "must be 2 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        )
    }

    /// A channel title.
    pub fn title(&mut self, field: &str, title: &str) -> &mut Self {
        let ok = TITLE_LEN.contains(&title.chars().count()) && !title.trim().is_empty();
        self.check(ok, field, "must be 1 to 140 characters, not only spaces")
            .plain_text(field, title)
    }

    /// A channel category (may be empty: no category).
    pub fn category(&mut self, field: &str, category: &str) -> &mut Self {
        self.check(
            category.chars().count() <= CATEGORY_MAX,
            field,
            "must be at most 64 characters",
        )
        .plain_text(field, category)
    }

    /// Text shown to others on one line (titles, categories, tags, labels): no control
    /// characters (NUL, line breaks, escapes) and no bidirectional formatting characters,
    /// which can make a title read backwards or hide text (U+202E "right-to-left override";
    /// CVE-2021-42574, "Trojan Source").
    fn plain_text(&mut self, field: &str, text: &str) -> &mut Self {
        self.check(
            is_plain_text(text),
            field,
            "must not contain control or bidirectional formatting characters",
        )
    }

    /// A channel's tags.
    pub fn tags(&mut self, field: &str, tags: &[String]) -> &mut Self {
        self.check(tags.len() <= TAGS_MAX, field, "at most 10 tags");
        for (i, tag) in tags.iter().enumerate() {
            self.tag(&format!("{field}[{i}]"), tag);
        }
        self
    }

    /// One tag.
    pub fn tag(&mut self, field: &str, tag: &str) -> &mut Self {
        let ok = TAG_LEN.contains(&tag.chars().count()) && !tag.trim().is_empty();
        self.check(ok, field, "must be 1 to 32 characters, not only spaces")
            .plain_text(field, tag)
    }

    /// Directory search text. Shown text never holds control or bidirectional formatting
    /// characters, so a search for them is refused rather than answered with nothing.
    pub fn query(&mut self, field: &str, text: &str) -> &mut Self {
        self.check(
            text.chars().count() <= QUERY_MAX,
            field,
            "must be at most 100 characters",
        )
        .plain_text(field, text)
    }

    /// A stream key label (may be empty).
    pub fn label(&mut self, field: &str, label: &str) -> &mut Self {
        self.check(
            label.chars().count() <= LABEL_MAX,
            field,
            "must be at most 64 characters",
        )
        .plain_text(field, label)
    }

    /// The 400 for what was found, if anything.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(std::mem::take(&mut self.errors)))
        }
    }
}

/// Whether `text` has no control character (Unicode category Cc: NUL, tabs, line breaks,
/// ESC, C1) and none of the bidirectional formatting characters (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069).
pub fn is_plain_text(text: &str) -> bool {
    !text.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

/// A slug from a path: checked so nothing malformed reaches the store.
pub fn path_slug(slug: &str) -> Result<(), ApiError> {
    Checks::new().slug("slug", slug).finish()
}

/// `offset` and `limit` query parameters.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items to skip (0 to 1000000; default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Items to return (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The checked window.
    pub fn page(self) -> Result<onair_store::Page, ApiError> {
        self.page_with(Checks::new())
    }

    /// The checked window, refused together with the problems `checks` already holds.
    pub fn page_with(self, mut checks: Checks) -> Result<onair_store::Page, ApiError> {
        let offset = self.offset.unwrap_or(0);
        let limit = self.limit.unwrap_or(LIMIT_DEFAULT);
        checks
            .check(offset <= OFFSET_MAX, "offset", "must be at most 1000000")
            .check(
                (1..=LIMIT_MAX).contains(&limit),
                "limit",
                "must be 1 to 100",
            )
            .finish()?;
        Ok(onair_store::Page::new(offset, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(checks: &mut Checks) -> Vec<String> {
        match checks.finish() {
            Ok(()) => vec![],
            Err(e) => e.problem().errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_D9", &"x".repeat(32)] {
            assert!(fields(Checks::new().username("u", ok)).is_empty(), "{ok}");
        }
        for bad in ["ab", "a b", "ünï", "a/b", &"x".repeat(33), ""] {
            assert_eq!(fields(Checks::new().username("u", bad)), ["u"], "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(fields(Checks::new().password("p", "ééééééé")).len() == 1);
        assert!(fields(Checks::new().password("p", "éééééééé")).is_empty());
        assert!(fields(Checks::new().password("p", &"é".repeat(128))).is_empty());
        assert!(fields(Checks::new().password("p", &"é".repeat(129))).len() == 1);
    }

    #[test]
    fn channel_details() {
        let mut checks = Checks::new();
        checks
            .slug("slug", "Bad Slug")
            .title("title", " ")
            .category("category", &"c".repeat(65))
            .tags("tags", &["ok".into(), String::new(), "t".repeat(33)]);
        assert_eq!(
            fields(&mut checks),
            ["slug", "title", "category", "tags[1]", "tags[2]"]
        );
        let many: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(fields(Checks::new().tags("tags", &many)), ["tags"]);
        assert!(
            fields(
                Checks::new()
                    .slug("slug", "my-channel_1")
                    .title("title", &"é".repeat(140))
                    .category("category", "")
                    .label("label", &"l".repeat(64))
            )
            .is_empty()
        );
        assert_eq!(
            fields(Checks::new().label("label", &"l".repeat(65))),
            ["label"]
        );
    }

    #[test]
    fn shown_text_has_no_control_or_bidi_characters() {
        for bad in [
            "a\u{0}b",
            "line\nbreak",
            "tab\there",
            "esc\u{1b}[31m",
            "c1\u{85}",
            "gnp.\u{202E}exe",
            "\u{2066}isolate\u{2069}",
            "mark\u{200F}",
        ] {
            assert!(!is_plain_text(bad), "{bad:?}");
            let mut checks = Checks::new();
            checks
                .title("title", bad)
                .category("category", bad)
                .tags("tags", &[bad.to_owned()])
                .label("label", bad);
            assert_eq!(
                fields(&mut checks),
                ["title", "category", "tags[0]", "label"],
                "{bad:?}"
            );
        }
        for ok in [
            "Alice plays chess",
            "שלום עולם",
            "日本語のタイトル",
            "emoji 🎮",
            "a\u{200D}b",
        ] {
            assert!(is_plain_text(ok), "{ok:?}");
            assert!(
                fields(Checks::new().title("title", ok)).is_empty(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn paging_bounds() {
        let page = PageQuery::default().page().unwrap();
        assert_eq!((page.offset, page.limit), (0, 20));
        let page = |offset, limit| {
            PageQuery {
                offset: Some(offset),
                limit: Some(limit),
            }
            .page()
        };
        assert!(page(1_000_000, 100).is_ok());
        let e = page(1_000_001, 0).unwrap_err().problem();
        let named: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["offset", "limit"]);
        assert!(page(0, 101).is_err());
    }
}
