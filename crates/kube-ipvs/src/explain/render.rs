//! The report as text (one line per check: a mark, the check, its summary; then its facts, why
//! and the fix, indented) or as JSON for tools.
//!
//! Names come from cluster objects and files anyone with write access to a namespace controls:
//! every string is printed with its control and bidirectional-override characters escaped, so a
//! Service name cannot rewrite the terminal. (A shared escaping function is being added to
//! `render/`; this local one is to be replaced by it.)

use std::fmt::Write as _;

use super::report::{Report, Verdict};

/// `s` with control characters (and Unicode bidi controls) escaped as `\u{..}` / `\n`.
pub fn escape(s: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| c.is_control() || bidi(c)) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() || bidi(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The width of the check-name column.
const ID_WIDTH: usize = 12;

/// The text report.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = write!(out, "kube-ipvs explain {}", escape(&r.target));
    if let Some(s) = r.service.as_ref().filter(|s| **s != r.target) {
        let _ = write!(out, " -> Service {}", escape(s));
    }
    let _ = writeln!(out, " on node {}", escape(&r.node));
    if let Some(res) = &r.resolved {
        let _ = writeln!(out, "  {} is {}", escape(&r.target), escape(res));
    }
    out.push('\n');
    let indent = " ".repeat(ID_WIDTH + 8);
    for c in &r.checks {
        let _ = writeln!(
            out,
            "[{}] {:<ID_WIDTH$} {}",
            c.verdict.mark(),
            c.id,
            escape(&c.summary)
        );
        for d in &c.details {
            let _ = writeln!(out, "{indent}{}", escape(d));
        }
        if let Some(why) = &c.reason {
            let _ = writeln!(out, "{indent}why: {}", escape(why));
        }
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{indent}fix: {}", escape(fix));
        }
    }
    out.push('\n');
    let ids = |v: Verdict| -> Vec<&str> {
        r.checks
            .iter()
            .filter(|c| c.verdict == v)
            .map(|c| c.id)
            .collect()
    };
    let (fail, unknown) = (ids(Verdict::Fail), ids(Verdict::Unknown));
    if !fail.is_empty() {
        let _ = writeln!(out, "wrong: {}", fail.join(", "));
    }
    if !unknown.is_empty() {
        let _ = writeln!(out, "not checked: {}", unknown.join(", "));
    }
    if fail.is_empty() && unknown.is_empty() {
        out.push_str("everything checked holds\n");
    }
    out
}

/// The JSON report (`status` is the exit status).
pub fn json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), r.exit_status().into());
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::super::report::Check;
    use super::*;

    fn report() -> Report {
        Report {
            target: "shop/web\u{1b}[2J".into(),
            service: Some("shop/web\u{1b}[2J".into()),
            resolved: None,
            node: "node-a".into(),
            checks: vec![
                Check::pass("service", "ClusterIP 10.96.0.20"),
                Check::fail("endpoints", "no ready endpoints")
                    .details(["EndpointSlice web-1\u{202e}: 0 ready".to_string()])
                    .because("none is ready")
                    .fix("kubectl describe pods"),
            ],
        }
    }

    #[test]
    fn text_has_a_line_per_check_and_escapes_names() {
        let t = text(&report());
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202e}'), "{t}");
        assert!(
            t.starts_with("kube-ipvs explain shop/web\\u{1b}[2J on node node-a\n"),
            "{t}"
        );
        assert!(
            t.contains("[ ok ] service      ClusterIP 10.96.0.20\n"),
            "{t}"
        );
        assert!(
            t.contains("[FAIL] endpoints    no ready endpoints\n"),
            "{t}"
        );
        assert!(t.contains("EndpointSlice web-1\\u{202e}: 0 ready"), "{t}");
        assert!(t.contains("    why: none is ready\n"), "{t}");
        assert!(t.contains("    fix: kubectl describe pods\n"), "{t}");
        assert!(t.ends_with("wrong: endpoints\n"), "{t}");
    }

    #[test]
    fn json_carries_every_check_and_the_status() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(v["status"], 1);
        assert_eq!(v["checks"][1]["id"], "endpoints");
        assert_eq!(v["checks"][1]["verdict"], "fail");
        assert_eq!(v["checks"][1]["fix"], "kubectl describe pods");
        assert_eq!(v["checks"][0]["verdict"], "pass");
        assert!(v["checks"][0].get("fix").is_none());
    }
}
