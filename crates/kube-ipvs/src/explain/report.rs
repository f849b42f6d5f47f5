//! The outcome of `explain`: one [`Check`] per question, each with a [`Verdict`], and the exit
//! status they add up to.

use serde::Serialize;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Holds.
    Pass,
    /// Not applicable here (a ClusterIP Service has no NodePort to check).
    Skip,
    /// Holds, but worth knowing (uneven spread, fallback to cluster endpoints).
    Warn,
    /// Could not be checked (no permission, agent endpoint disabled, API server unreachable).
    Unknown,
    /// Something is wrong: see the reason and the fix.
    Fail,
}

impl Verdict {
    /// The mark of the text report.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => " ok ",
            Verdict::Skip => " -- ",
            Verdict::Warn => "warn",
            Verdict::Unknown => " ?? ",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One question answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier (`endpoints`, `ipvs`, ...).
    pub id: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// One line.
    pub summary: String,
    /// Supporting facts, one per line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Why it fails (or why it could not be checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check with a verdict and a summary.
    pub fn new(id: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Self {
            id,
            verdict,
            summary: summary.into(),
            details: Vec::new(),
            reason: None,
            fix: None,
        }
    }

    /// A passing check.
    pub fn pass(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Verdict::Pass, summary)
    }

    /// A check that does not apply.
    pub fn skip(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Verdict::Skip, summary)
    }

    /// A check that could not run: `why` is the reason.
    pub fn unknown(id: &'static str, summary: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(id, Verdict::Unknown, summary).because(why)
    }

    /// A failing check.
    pub fn fail(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Verdict::Fail, summary)
    }

    /// Adds the reason.
    #[must_use]
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Adds the fix.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Adds supporting lines.
    #[must_use]
    pub fn details(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(lines);
        self
    }
}

/// Every check, in the order a person would go through them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What was asked (`shop/web`, `10.96.0.20:80/TCP`).
    pub target: String,
    /// The Service explained, when known (`namespace/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// How an address resolved to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// The node.
    pub node: String,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// 1 when a check fails, else 2 when one could not be checked, else 0.
    pub fn exit_status(&self) -> u8 {
        let worst = |v: Verdict| self.checks.iter().any(|c| c.verdict == v);
        if worst(Verdict::Fail) {
            1
        } else if worst(Verdict::Unknown) {
            2
        } else {
            0
        }
    }

    /// One check by id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_outranks_an_unchecked_question() {
        let mut r = Report {
            target: "a/b".into(),
            service: None,
            resolved: None,
            node: "n".into(),
            checks: vec![Check::pass("a", "x"), Check::new("b", Verdict::Warn, "y")],
        };
        assert_eq!(r.exit_status(), 0, "warnings do not fail");
        r.checks.push(Check::unknown("c", "z", "no permission"));
        assert_eq!(r.exit_status(), 2);
        r.checks.push(Check::fail("d", "w"));
        assert_eq!(r.exit_status(), 1);
        assert_eq!(
            r.check("c").unwrap().reason.as_deref(),
            Some("no permission")
        );
    }
}
