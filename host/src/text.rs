//! Text from outside — a plug-in's panic message, log lines and rule errors, a citizen's
//! description — made safe for where it goes: a log line that cannot be forged or colour
//! the operator's terminal, a field without NUL or other control characters, XML that
//! stays well-formed.

use std::borrow::Cow;

/// `s` with every control character (ANSI escapes, newlines, NUL, DEL, the C1 range) and
/// every Unicode line or bidi-override character written as `\u{..}`, so guest text in the
/// server log is one line that says what it is and cannot pose as another log line.
pub fn escape_for_log(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_log_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_log_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_log_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than allowed.
    #[error("{field} is {len} bytes; at most {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Holds a control character other than a newline or a tab.
    #[error(
        "{field} contains the control character U+{code:04X} at byte {at}; send plain text (newlines and tabs are fine)"
    )]
    Control {
        /// The field.
        field: &'static str,
        /// The character's code point.
        code: u32,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks a free-text field a person typed: at most `max` bytes, and no control characters
/// but newline, carriage return and tab (a NUL once travelled into the store and out into
/// Open311 XML).
pub fn check(field: &'static str, s: &str, max: usize) -> Result<(), TextError> {
    if s.len() > max {
        return Err(TextError::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    match s
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some((at, c)) => Err(TextError::Control {
            field,
            code: c as u32,
            at,
        }),
        None => Ok(()),
    }
}

/// `s` with everything XML 1.0 cannot carry (most C0 controls, the surrogates' stand-ins
/// U+FFFE and U+FFFF) replaced by U+FFFD, and `&<>"'` escaped: always well-formed
/// character data.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_escaping_leaves_plain_text_alone_and_escapes_every_control() {
        assert!(matches!(
            escape_for_log("路由 ok"),
            Cow::Borrowed("路由 ok")
        ));
        let forged = "boom\n2026-12-01T00:00:00Z  INFO civic: admin token ok\u{1b}[31mred\u{202e}";
        let e = escape_for_log(forged);
        assert!(!e.chars().any(|c| c.is_control()), "{e}");
        assert!(e.contains("\\u{a}2026") && e.contains("\\u{1b}[31m") && e.contains("\\u{202e}"));
    }

    #[test]
    fn text_checks_refuse_controls_but_keep_newlines() {
        assert_eq!(check("description", "第一行\n第二行\t", 100), Ok(()));
        assert_eq!(
            check("description", "a\0b", 100),
            Err(TextError::Control {
                field: "description",
                code: 0,
                at: 1
            })
        );
        assert!(matches!(
            check("reason", "xxxx", 3),
            Err(TextError::TooLong { len: 4, max: 3, .. })
        ));
        assert!(check("reason", "\u{1b}[2J", 10).is_err());
    }

    #[test]
    fn xml_escaping_is_always_well_formed() {
        assert_eq!(
            xml_escape("a<b>&\"'\u{0}\u{8}\u{ffff}\n"),
            "a&lt;b&gt;&amp;&quot;&apos;\u{fffd}\u{fffd}\u{fffd}\n"
        );
    }
}
