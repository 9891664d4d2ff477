//! Which paths of the build context a `.dockerignore` keeps out, as Docker decides it (its
//! documented rules): every pattern is relative to the context root (`/foo`, `./foo`, `foo/`
//! all mean `foo`, cleaned like Go's `filepath.Clean`); `*`, `?` and `[...]` follow Go's
//! `filepath.Match` and never cross a `/`; `**` matches any number of directories, none
//! included; a pattern matching a directory also matches everything below it; `!` makes an
//! exception; the last matching line decides; `#` in column 1 starts a comment.
//!
//! Hand-written: no maintained crate implements these semantics. The `ignore` crate's gitignore
//! matcher differs where this repo's file depends on it: an unanchored `*` or `target` matches
//! at any depth in gitignore but only at the root in Docker, and gitignore cannot re-include a
//! file below an excluded directory, so `*` + `!src` would keep `src/main.rs` out; the
//! dockerignore crates found on crates.io only classify lines. Patterns are translated to
//! `regex` (already in the lock file) the way the semantics above read.

use regex::Regex;

#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    exception: bool,
    pattern: String,
    regex: Regex,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                return Err(format!(".dockerignore line {}: `!` without a pattern", i + 1));
            }
            let pattern = clean(body);
            let regex = Regex::new(&translate(&pattern).map_err(|e| format!(".dockerignore line {}: {e}", i + 1))?)
                .map_err(|e| format!(".dockerignore line {}: {e}", i + 1))?;
            rules.push(Rule { exception, pattern, regex });
        }
        Ok(Rules { rules })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is kept out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.matches_self_or_parent(path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether anything below the excluded directory `dir` can be back in the context: only
    /// an exception that can match a path below it. Lets a walk skip `target/` whole.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let below = format!("{dir}/");
        self.rules.iter().filter(|r| r.exception).any(|r| {
            let literal = r.pattern.find(['*', '?', '[', '\\']).map_or(r.pattern.as_str(), |end| &r.pattern[..end]);
            let is_literal = literal.len() == r.pattern.len();
            if is_literal {
                r.pattern.starts_with(&below)
            } else {
                literal.starts_with(&below) || below.starts_with(literal)
            }
        })
    }
}

impl Rule {
    fn matches_self_or_parent(&self, path: &str) -> bool {
        self.regex.is_match(path) || path.match_indices('/').any(|(i, _)| self.regex.is_match(&path[..i]))
    }
}

/// Go's `filepath.Clean` for `/`-separated patterns, then relative to the context root.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            // Above the root of a rooted pattern there is nothing; `..` there stays the root.
            ".." if pattern.starts_with('/') => {}
            other => parts.push(other),
        }
    }
    if parts.is_empty() { ".".to_string() } else { parts.join("/") }
}

fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                re.push_str(if i == chars.len() { ".*" } else { "(.*/)?" });
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                re.push('[');
                if chars.get(j) == Some(&'^') {
                    re.push('^');
                    j += 1;
                }
                let first = j;
                loop {
                    match chars.get(j) {
                        None => return Err(format!("unterminated character class in {pattern}")),
                        Some(']') if j > first => break,
                        Some('\\') => {
                            let escaped = chars.get(j + 1).ok_or(format!("trailing \\ in {pattern}"))?;
                            re.push_str(&regex::escape(&escaped.to_string()));
                            j += 2;
                        }
                        Some('-') => {
                            re.push('-');
                            j += 1;
                        }
                        Some(c) => {
                            re.push_str(&regex::escape(&c.to_string()));
                            j += 1;
                        }
                    }
                }
                re.push(']');
                i = j;
            }
            '\\' => match chars.get(i + 1) {
                Some(c) => {
                    re.push_str(&regex::escape(&c.to_string()));
                    i += 1;
                }
                None => re.push_str(r"\\"),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::parse(text).unwrap()
    }

    #[test]
    fn a_plain_pattern_is_anchored_at_the_root_and_covers_what_is_below() {
        let r = rules("target\n/.testenv/\n./docs\n");
        assert!(r.excludes("target"));
        assert!(r.excludes("target/release/cloudsync-operator"));
        assert!(r.excludes(".testenv/bin/kubectl"));
        assert!(r.excludes("docs/README.md"));
        // gitignore would exclude these too; Docker does not.
        assert!(!r.excludes("sim/target/debug/x"));
        assert!(!r.excludes("src/docs"));
        assert!(!r.excludes("targets"));
    }

    #[test]
    fn an_allowlist_re_includes_directories_below_a_star() {
        let r = rules("# allowlist\n*\n!Cargo.toml\n!src\n!docker/stub.sh\n**/*.tmp\n");
        assert!(!r.excludes("Cargo.toml"));
        assert!(!r.excludes("src/main.rs"));
        assert!(!r.excludes("src/graph/http.rs"));
        assert!(!r.excludes("docker/stub.sh"));
        assert!(r.excludes("docker/other.sh"));
        assert!(r.excludes("README.md"));
        assert!(r.excludes("tests/dockerfile.rs"));
        assert!(r.excludes("sim/Cargo.toml"));
        assert!(r.excludes("src/a.tmp") && r.excludes("x.tmp") && r.excludes("src/deep/er/b.tmp"));
        assert!(r.excludes("docker") && r.may_include_below("docker"));
        assert!(!r.may_include_below("target") && !r.may_include_below("tests"));
    }

    #[test]
    fn the_last_matching_line_decides() {
        // The documentation's examples.
        let r = rules("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(r.excludes("CHANGES.md") && r.excludes("README-secret.md"));
        assert!(!r.excludes("README.md") && !r.excludes("README-public.md"));
        let r = rules("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!r.excludes("README-secret.md"));
    }

    #[test]
    fn globs_stay_within_a_path_segment_and_double_star_spans_directories() {
        let r = rules("*/temp*\ntemp?\n**/*.go\ndata/**\nlog[0-9]\nx[^a]\n");
        assert!(r.excludes("somedir/temporary.txt") && !r.excludes("a/b/temporary.txt"));
        assert!(r.excludes("tempa") && !r.excludes("temp") && !r.excludes("tempab"));
        assert!(r.excludes("main.go") && r.excludes("a/b/c/main.go") && !r.excludes("main.gox"));
        assert!(r.excludes("data/a/b") && !r.excludes("data") && !r.excludes("database"));
        assert!(r.excludes("log7") && !r.excludes("logx"));
        assert!(r.excludes("xb") && !r.excludes("xa"));
        assert!(!rules("!src\n").may_include_below("target"));
        assert!(rules("*\n!**/Cargo.toml\n").may_include_below("target"));
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(Rules::parse("!\n").is_err());
        assert!(Rules::parse("log[0-9\n").is_err());
    }
}
