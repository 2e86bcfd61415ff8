//! Annotation templates: `{{ $labels.NAME }}`, `{{ $value }}` and `{{ $next_trial_in }}`,
//! the subset of Prometheus' template language that reads the same in both engines (the
//! exported rules keep the text as it is, and Prometheus fills in `$labels` and `$value`).

use std::collections::BTreeMap;

/// What a template can read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vars<'a> {
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) value: f64,
    pub(crate) next_trial_in: Option<std::time::Duration>,
}

/// Fills `template` in. An unknown variable is left as written, so a typo shows in the alert.
pub(crate) fn render(template: &str, vars: &Vars<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = after[..end].trim();
        match substitute(expr, vars) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn substitute(expr: &str, vars: &Vars<'_>) -> Option<String> {
    if let Some(name) = expr.strip_prefix("$labels.") {
        return Some(vars.labels.get(name.trim()).cloned().unwrap_or_default());
    }
    match expr {
        "$value" => Some(format_value(vars.value)),
        "$next_trial_in" => Some(
            vars.next_trial_in
                .map(|d| {
                    humantime::format_duration(std::time::Duration::from_millis(
                        d.as_millis() as u64
                    ))
                    .to_string()
                })
                .unwrap_or_else(|| "none".to_owned()),
        ),
        _ => None,
    }
}

/// A value as Prometheus prints it in `$value`: shortest round-trip form.
pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_value_and_unknowns() {
        let labels: BTreeMap<String, String> = [("name".to_owned(), "pay".to_owned())].into();
        let vars = Vars {
            labels: &labels,
            value: 0.25,
            next_trial_in: Some(std::time::Duration::from_secs(30)),
        };
        assert_eq!(
            render(
                "{{ $labels.name }} at {{$value}}, trial in {{ $next_trial_in }} {{ $x }} {{",
                &vars
            ),
            "pay at 0.25, trial in 30s {{ $x }} {{"
        );
    }
}
