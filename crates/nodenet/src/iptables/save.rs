//! Parsing `iptables-save -t TABLE` and normalizing rules, so what we render can be
//! compared with what the kernel reports (which prints marks, masks and defaults its way).

use std::collections::BTreeMap;

/// The chains and rules of one table as `iptables-save` printed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    chains: BTreeMap<String, Vec<String>>,
}

impl SavedTable {
    /// Parses the output for one table; unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    chains.entry(name.to_string()).or_default();
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, body) = rule.split_once(' ').unwrap_or((rule, ""));
                chains
                    .entry(chain.to_string())
                    .or_default()
                    .push(body.to_string());
            }
        }
        Self { chains }
    }

    /// Whether the chain exists.
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.contains_key(name)
    }

    /// The rule bodies (after `-A CHAIN `) of a chain, empty if absent.
    pub fn rules(&self, name: &str) -> &[String] {
        self.chains.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Splits like a shell would for iptables rules: whitespace, double quotes, backslash escapes.
fn tokens(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_token = true;
            }
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `0x004000` -> `0x4000`, `0x004000/0x004000` -> `0x4000/0x4000`.
fn norm_mark(s: &str) -> String {
    match s.split_once('/') {
        Some((v, m)) => match (hex(v), hex(m)) {
            (Some(v), Some(m)) => format!("{v:#x}/{m:#x}"),
            _ => s.to_string(),
        },
        None => hex(s).map_or_else(|| s.to_string(), |v| format!("{v:#x}")),
    }
}

/// Base options (`-s -d -i -o -p`, each maybe negated) go first, in that order, as
/// `iptables-save` prints them wherever the rule had them.
fn hoist_base_options(t: Vec<String>) -> Vec<String> {
    const BASE: [&str; 5] = ["-s", "-d", "-i", "-o", "-p"];
    let canon = |o: &str| match o {
        "--source" => "-s".to_string(),
        "--destination" => "-d".to_string(),
        "--in-interface" => "-i".to_string(),
        "--out-interface" => "-o".to_string(),
        "--protocol" => "-p".to_string(),
        o => o.to_string(),
    };
    let mut base: Vec<(usize, Vec<String>)> = Vec::new();
    let mut rest = Vec::with_capacity(t.len());
    let mut i = 0;
    while let Some(tok) = t.get(i) {
        let neg = tok == "!";
        let opt = if neg { t.get(i + 1) } else { Some(tok) };
        let opt = opt.map(|o| canon(o));
        let rank = opt
            .as_deref()
            .and_then(|o| BASE.iter().position(|b| *b == o));
        match (rank, opt) {
            (Some(rank), Some(o)) => {
                let value_at = if neg { i + 2 } else { i + 1 };
                let mut group = Vec::new();
                if neg {
                    group.push("!".to_string());
                }
                group.push(o);
                if let Some(v) = t.get(value_at) {
                    group.push(v.clone());
                }
                base.push((rank, group));
                i = value_at + 1;
            }
            _ => {
                rest.push(tok.clone());
                i += 1;
            }
        }
    }
    base.sort_by_key(|(rank, _)| *rank);
    base.into_iter().flat_map(|(_, g)| g).chain(rest).collect()
}

/// A rule in the canonical token form used for comparison: the forms `iptables-save` prints
/// for base options, `--or-mark`, `--xor-mark`, default `--reject-with`, host addresses and
/// protocol numbers.
pub fn normalize(rule: &str) -> Vec<String> {
    let t = hoist_base_options(tokens(rule));
    let mut out: Vec<String> = Vec::with_capacity(t.len());
    let mut i = 0;
    while let Some(tok) = t.get(i) {
        let next = t.get(i + 1);
        match (tok.as_str(), next) {
            ("--or-mark", Some(v)) => {
                out.push("--set-xmark".into());
                let v = norm_mark(v);
                out.push(format!("{v}/{v}"));
                i += 2;
            }
            ("--xor-mark", Some(v)) => {
                out.push("--set-xmark".into());
                out.push(format!("{}/0x0", norm_mark(v)));
                i += 2;
            }
            ("--reject-with", Some(v))
                if v == "icmp-port-unreachable" || v == "icmp6-port-unreachable" =>
            {
                i += 2;
            }
            ("--mark" | "--set-xmark", Some(v)) => {
                out.push(tok.clone());
                out.push(norm_mark(v));
                i += 2;
            }
            ("-s" | "-d" | "--source" | "--destination", Some(v)) => {
                out.push(if tok.starts_with("--s") {
                    "-s".into()
                } else if tok.starts_with("--d") {
                    "-d".into()
                } else {
                    tok.clone()
                });
                out.push(if v.contains('/') {
                    v.clone()
                } else if v.contains(':') {
                    format!("{v}/128")
                } else {
                    format!("{v}/32")
                });
                i += 2;
            }
            ("--vproto", Some(v)) => {
                out.push(tok.clone());
                out.push(match v.as_str() {
                    "tcp" => "6".into(),
                    "udp" => "17".into(),
                    "sctp" => "132".into(),
                    other => other.to_string(),
                });
                i += 2;
            }
            _ => {
                out.push(tok.clone());
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chains_and_rules() {
        let saved = SavedTable::parse(
            "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n",
        );
        assert!(saved.has_chain("KUBE-MARK-MASQ"));
        assert_eq!(
            saved.rules("KUBE-MARK-MASQ"),
            ["-j MARK --set-xmark 0x4000/0x4000"]
        );
        assert_eq!(saved.rules("PREROUTING").len(), 1);
        assert!(saved.rules("NOPE").is_empty());
    }

    #[test]
    fn normalizes_what_iptables_save_rewrites() {
        assert_eq!(
            normalize("-j MARK --or-mark 0x004000"),
            normalize("-j MARK --set-xmark 0x4000/0x4000")
        );
        assert_eq!(
            normalize("-j MARK --xor-mark 0x004000"),
            normalize("-j MARK --set-xmark 0x4000/0x0")
        );
        assert_eq!(
            normalize("-m mark ! --mark 0x004000/0x004000 -j RETURN"),
            normalize("-m mark ! --mark 0x4000/0x4000 -j RETURN")
        );
        assert_eq!(
            normalize("-m set --match-set X dst -j REJECT"),
            normalize("-m set --match-set X dst -j REJECT --reject-with icmp-port-unreachable")
        );
        assert_eq!(
            normalize("-s 10.0.0.1 -j DROP"),
            normalize("-s 10.0.0.1/32 -j DROP")
        );
        assert_eq!(
            normalize("-m comment --comment \"a b\" -j X"),
            vec!["-m", "comment", "--comment", "a b", "-j", "X"]
        );
        assert_eq!(
            normalize("-m comment --comment a\\ b"),
            normalize("-m comment --comment \"a b\"")
        );
        assert_ne!(
            normalize("-j MARK --or-mark 0x4000"),
            normalize("-j MARK --or-mark 0x8000")
        );
        assert_eq!(
            normalize("-m set --match-set X dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"),
            normalize("! -s 10.244.0.0/16 -m set --match-set X dst,dst -j KUBE-MARK-MASQ")
        );
        assert_eq!(
            normalize("-p tcp -d 10.0.0.0/8 -j X"),
            normalize("-d 10.0.0.0/8 -p tcp -j X")
        );
    }
}
