//! Untrusted text made safe to show on a line of its own.
//!
//! Object keys, details, message bodies and message attributes come from whoever can write
//! a bucket or send to a queue, and they end up in operator e-mail (the notifier's alerts)
//! and in logs. S3 allows any UTF-8 in a key, control characters included ("Object key
//! naming guidelines": characters that "might require special handling", S3 User Guide,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>), and SQS bodies
//! and attributes may hold `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to
//! #x10FFFF` (SQS API Reference, `SendMessage`,
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>).
//! So a key such as `a\nRunbook: curl … | sh` would forge a line of an alert, and bidi
//! overrides would make shown text read differently from what it is.
//!
//! [`escape`] writes every such character as a visible escape, so what is shown is one line
//! that reads as what it holds.
//!
//! Floor 0: imports nothing of the crate.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not appear raw in a line of shown text: C0 and C1 controls and DEL
/// (`char::is_control`: `\n`, `\r`, `\t`, NEL, ...), the Unicode line and paragraph
/// separators U+2028 and U+2029, and the bidirectional formatting characters (ALM, LRM,
/// RLM, the embeddings and overrides U+202A..U+202E and the isolates U+2066..U+2069:
/// Unicode Standard Annex #9, <https://www.unicode.org/reports/tr9/>).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every [`is_unsafe`] character written as an escape (`\n`, `\r`, `\t`, else
/// `\u{XXXX}`) and every backslash doubled, so an escape in the output always stands for the
/// character, never for a backslash the input held. Borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:04X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text [`escape`] was given: `unescape(&escape(s)) == s` for every `s`. `None` for
/// text `escape` cannot have written (a lone backslash, an unknown or malformed escape).
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|&h| h != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain(
        "reports/Q1 summary+final é 日本語.txt",
        "reports/Q1 summary+final é 日本語.txt"
    )]
    #[case::newline("a\nRunbook: curl x | sh", "a\\nRunbook: curl x | sh")]
    #[case::crlf("a\r\nb", "a\\r\\nb")]
    #[case::tab("a\tb", "a\\tb")]
    #[case::bell_and_del("a\u{7}b\u{7f}", "a\\u{0007}b\\u{007F}")]
    #[case::c1_nel("a\u{85}b", "a\\u{0085}b")]
    #[case::line_separator("a\u{2028}b\u{2029}", "a\\u{2028}b\\u{2029}")]
    #[case::bidi_override("txt.\u{202E}exe", "txt.\\u{202E}exe")]
    #[case::bidi_isolate("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}")]
    #[case::backslash("a\\nb", "a\\\\nb")]
    fn escapes(#[case] raw: &str, #[case] shown: &str) {
        assert_eq!(escape(raw), shown);
        assert_eq!(unescape(shown).as_deref(), Some(raw));
    }

    #[test]
    fn text_escape_never_wrote_is_refused() {
        for bad in ["a\\", "\\q", "\\u{zz}", "\\u0041", "\\u{110000}"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Whatever it holds, escaped text is one line with no unsafe character.
        #[test]
        fn escaped_text_is_one_safe_line(
            s in prop_oneof![
                any::<String>(),
                "[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}\\u{2029}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}\\\\a-z]{0,40}",
            ]
        ) {
            let e = escape(&s);
            prop_assert!(!e.chars().any(is_unsafe), "{e:?}");
            prop_assert_eq!(e.lines().count().max(1), 1);
        }

        /// A reader of the logs gets back exactly what was escaped.
        #[test]
        fn unescape_undoes_escape(
            s in prop_oneof![
                any::<String>(),
                "[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}\\u{2029}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}\\\\a-z{}u]{0,40}",
            ]
        ) {
            prop_assert_eq!(unescape(&escape(&s)), Some(s.clone()));
        }
    }
}
