//! Escaping of names before they are printed: a cluster object's name, a port name or an owners
//! file entry is input, and a control character in one (a newline, a carriage return, an ANSI
//! escape) must not forge a line of `plan`, `list --services`, a report or a log.
//!
//! Use [`Escaped`] (a `Display` wrapper) or [`escape`] wherever such a string is printed as text;
//! JSON output needs neither (serde_json escapes control characters itself).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Whether a character is printed escaped: the C0 and C1 control characters and DEL, plus the
/// Unicode line and paragraph separators and the bidirectional overrides (which reorder a line
/// on a terminal).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with each control character written as Rust writes it in a string literal (`\n`, `\t`,
/// `\r`, `\u{1b}`), so the result is one line. A backslash stays as it is: escaping is then
/// idempotent, and text built from already escaped parts can be escaped again safely.
/// Borrows when there is nothing to escape (every valid Kubernetes name).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = write!(out, "{}", Escaped(s));
    Cow::Owned(out)
}

/// Displays a string with its control characters escaped (see [`escape`]).
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(needs_escape) {
            let (plain, tail) = rest.split_at(i);
            f.write_str(plain)?;
            let mut chars = tail.chars();
            let Some(c) = chars.next() else { break };
            write!(f, "{}", c.escape_default())?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let forged = "http\n  -> 6.6.6.6:80                   Masq    1      0          0";
        let e = escape(forged);
        assert!(!e.contains('\n'));
        assert_eq!(
            e,
            "http\\n  -> 6.6.6.6:80                   Masq    1      0          0"
        );
        assert_eq!(
            escape("a\r\u{1b}[2Kb\u{202e}c\\"),
            "a\\r\\u{1b}[2Kb\\u{202e}c\\"
        );
        assert_eq!(Escaped("x\ty").to_string(), "x\\ty");
        // Idempotent: a report line built from escaped names can be escaped again.
        assert_eq!(escape(&escape(forged)), escape(forged));
    }

    #[test]
    fn valid_names_are_borrowed_unchanged() {
        assert!(matches!(
            escape("kube-system/kube-dns:dns-tcp"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape("üñí"), "üñí");
    }
}
