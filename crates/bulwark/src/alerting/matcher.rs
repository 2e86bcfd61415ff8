//! Label matchers (`{breaker="payment", state=~"open|half_open"}`, Prometheus' syntax) and
//! breaker name patterns (`payment*`, a glob).

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// How one matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Equal,
    /// `!=`: not equal.
    NotEqual,
    /// `=~`: the whole value matches the regex.
    Regex,
    /// `!~`: the whole value does not match the regex.
    NotRegex,
}

impl MatchOp {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }
}

/// One label matcher. A missing label reads as the empty string, as in Prometheus.
#[derive(Clone, Debug)]
pub struct LabelMatcher {
    /// The label's name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regex as written.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl LabelMatcher {
    /// A matcher; a regex is anchored at both ends (`^(?:...)$`), as Prometheus does.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        if !is_label_name(name) {
            return Err(format!("`{name}` is not a label name"));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("bad regex for `{name}`: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Whether `labels` pass this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => got == self.value,
            (MatchOp::NotEqual, _) => got != self.value,
            (MatchOp::Regex, Some(r)) => r.is_match(got),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(got),
            (_, None) => false,
        }
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op.as_str(),
            escape(&self.value)
        )
    }
}

/// Escapes a label value for PromQL and the Prometheus text format.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a selector: `{a="x", b=~"y.*"}`, with or without the braces; empty selects all.
pub fn parse_selector(text: &str) -> Result<Vec<LabelMatcher>, String> {
    let mut rest = text.trim();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner
            .strip_suffix('}')
            .ok_or_else(|| "selector opens `{` but never closes it".to_owned())?
            .trim();
    }
    let mut matchers = Vec::new();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("`{rest}` has no operator"))?;
        let name = &rest[..name_end];
        let after = rest[name_end..].trim_start();
        let (op, after) = if let Some(a) = after.strip_prefix("=~") {
            (MatchOp::Regex, a)
        } else if let Some(a) = after.strip_prefix("!~") {
            (MatchOp::NotRegex, a)
        } else if let Some(a) = after.strip_prefix("!=") {
            (MatchOp::NotEqual, a)
        } else if let Some(a) = after.strip_prefix('=') {
            (MatchOp::Equal, a)
        } else {
            return Err(format!("expected =, !=, =~ or !~ after `{name}`"));
        };
        let after = after.trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of `{name}` must be a double-quoted string"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                other => value.push(other),
            }
        }
        let end = end.ok_or_else(|| format!("the value of `{name}` is not closed"))?;
        matchers.push(LabelMatcher::new(name, op, &value)?);
        rest = body[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("expected `,` before `{rest}`"));
        }
    }
    Ok(matchers)
}

/// A breaker name pattern: a plain name, or a glob where `*` is any run of characters and `?`
/// any one character. Any other pattern syntax (`[`, `{`, `(`, `|`, `^`, `$`, `+`, `\`) is
/// refused, so a regex written by mistake fails at start instead of matching nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    glob: String,
}

impl NamePattern {
    /// Parses `glob`.
    pub fn new(glob: &str) -> Result<Self, String> {
        if glob.is_empty() {
            return Err("the breaker pattern is empty".to_owned());
        }
        if let Some(c) = glob.chars().find(|c| {
            matches!(
                c,
                '[' | ']' | '{' | '}' | '(' | ')' | '|' | '^' | '$' | '+' | '\\'
            )
        }) {
            return Err(format!(
                "unknown pattern syntax `{c}` in `{glob}`: use a name or a glob with `*` and `?`"
            ));
        }
        Ok(Self {
            glob: glob.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.glob
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.glob.as_bytes(), name.as_bytes())
    }

    /// The same pattern as an (unanchored) RE2 regex, for PromQL's `=~`.
    pub fn to_regex(&self) -> String {
        let mut out = String::new();
        for c in self.glob.chars() {
            match c {
                '*' => out.push_str(".*"),
                '?' => out.push('.'),
                '.' => out.push_str("\\."),
                c => out.push(c),
            }
        }
        out
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative glob with one backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_parse_every_operator_and_match_whole_values() -> Result<(), String> {
        let m = parse_selector(r#"{name="pay", state=~"open|half_open", x!="1", y!~"a.*"}"#)?;
        assert_eq!(m.len(), 4);
        let l = labels(&[("name", "pay"), ("state", "open"), ("y", "b")]);
        assert!(m.iter().all(|m| m.matches(&l)));
        assert!(!m[1].matches(&labels(&[("state", "xopen")])));
        assert!(parse_selector(r#"{name="pay""#).is_err());
        assert!(parse_selector(r#"{name=pay}"#).is_err());
        assert!(parse_selector(r#"{name=~"("}"#).is_err());
        assert!(parse_selector("").map(|m| m.is_empty())?);
        Ok(())
    }

    #[test]
    fn globs_match_and_refuse_regex_syntax() -> Result<(), String> {
        let p = NamePattern::new("pay*-?")?;
        assert!(p.matches("payment-a"));
        assert!(!p.matches("payment-ab"));
        assert!(NamePattern::new("pay(ment|out)").is_err());
        assert_eq!(NamePattern::new("a.*")?.to_regex(), "a\\..*");
        Ok(())
    }
}
