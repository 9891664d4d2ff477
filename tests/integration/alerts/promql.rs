//! The metric names a PromQL expression selects: identifiers that are not functions (followed by
//! `(`), keywords, label names (inside `{...}` or a `by`/`without`/`on`/`ignoring`/`group_*` list),
//! durations (inside `[...]`), strings, numbers or Grafana variables (`$x`).

use std::collections::BTreeSet;

#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2",
    "inf", "nan",
    // Aggregation operators can take their `by`/`without` clause before the parenthesis.
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "limitk", "limit_ratio",
];
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if matches!(chars[i], '"' | '\'' | '`') {
                        let q = chars[i];
                        i += 1;
                        while i < chars.len() && chars[i] != q {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (ident(chars[i]) || chars[i] == '{' || chars[i] == '}') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (1e3, 0.5, 5m): letters right after digits belong to it.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if ident_start(c) => {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let next = chars.get(j).copied();
                if LABEL_LISTS.contains(&word.to_lowercase().as_str()) {
                    // Skip its label list.
                    if next == Some('(') {
                        while j < chars.len() && chars[j] != ')' {
                            j += 1;
                        }
                        i = j + 1;
                    }
                } else if next != Some('(') && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The metric families a name refers to: itself, and for `_bucket`, `_sum`, `_count` and
/// `_total` samples the family without the suffix.
pub fn families(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created"] {
        if let Some(base) = name.strip_suffix(suffix) {
            out.push(base.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(e: &str) -> Vec<String> {
        metric_names(e).into_iter().collect()
    }

    #[test]
    fn selectors_not_functions_labels_or_durations() {
        assert_eq!(
            names(
                r#"time() - max by (namespace, profile) (cloudsync_job_last_successful_run_timestamp_seconds{job="x", a=~"b{c}"} > 0) > 21600"#
            ),
            ["cloudsync_job_last_successful_run_timestamp_seconds"]
        );
        assert_eq!(
            names(r#"sum(rate(cloudsync_graph_throttled_total{job="x"}[5m])) > 0.05"#),
            ["cloudsync_graph_throttled_total"]
        );
        assert_eq!(names(r#"absent(up{job="x", namespace="mon"} == 1)"#), ["up"]);
        assert_eq!(
            names(
                "histogram_quantile(0.95, sum by (le) (rate(cloudsync_reconcile_duration_seconds_bucket[$__rate_interval])))"
            ),
            ["cloudsync_reconcile_duration_seconds_bucket"]
        );
        assert_eq!(
            names("a / on (namespace) group_left (profile) b offset 5m or vector(0) unless bool c"),
            ["a", "b", "c"]
        );
        assert_eq!(names(r#"count(x{namespace=~"$namespace"}) == 0 or vector(1e3)"#), ["x"]);
        assert_eq!(names("max by(namespace)(y)"), ["y"]);
        assert_eq!(names("sum without (pod) (z) > 1"), ["z"]);
    }

    #[test]
    fn sample_suffixes_resolve_to_their_family() {
        assert!(
            families("cloudsync_reconcile_duration_seconds_bucket")
                .contains(&"cloudsync_reconcile_duration_seconds".to_string())
        );
        assert!(families("cloudsync_reconciles_total").contains(&"cloudsync_reconciles".to_string()));
        assert_eq!(families("cloudsync_profile_ready"), ["cloudsync_profile_ready"]);
    }
}
