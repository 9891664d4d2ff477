//! A Dockerfile's stages and the instructions a replay of a build stage needs, parsed the way
//! Docker's frontend reads them: `\` continues a line, comment lines (also inside a continued
//! instruction) are dropped, keywords are case-insensitive, JSON (exec) form or shell form.
//! Pure: text in, stages out. Anything the replay could not reproduce faithfully is an error
//! rather than silently ignored.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub image: String,
    pub name: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the instruction's first line in the Dockerfile.
    pub line: usize,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    Workdir(String),
    Copy(Copy),
    Run(Run),
    /// `ENV`, and `ARG` with a default: variables the following RUN lines see.
    Env(Vec<(String, String)>),
    /// An instruction that only sets image metadata (LABEL, EXPOSE, CMD, ...).
    Metadata(String),
    /// An instruction that changes what later steps see in ways a replay on the host cannot
    /// reproduce (ADD, USER, SHELL, VOLUME, ONBUILD); fine in a stage that is not replayed.
    Unreplayable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Shell form: run with `/bin/sh -c`.
    Shell(String),
    /// Exec form: argv as written.
    Exec(Vec<String>),
}

impl Stage {
    pub fn copies(&self) -> impl Iterator<Item = &Copy> {
        self.steps.iter().filter_map(|s| match &s.kind {
            StepKind::Copy(c) => Some(c),
            _ => None,
        })
    }
}

pub fn parse(text: &str) -> Result<Vec<Stage>, String> {
    let mut stages: Vec<Stage> = Vec::new();
    for (line, instruction) in logical_lines(text)? {
        let (keyword, args) = match instruction.split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim().to_string()),
            None => (instruction.to_ascii_uppercase(), String::new()),
        };
        let at = |msg: String| format!("Dockerfile line {line}: {msg}");
        if keyword == "FROM" {
            stages.push(parse_from(&args).map_err(at)?);
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            if keyword == "ARG" {
                continue; // an ARG before the first FROM only parameterises FROM lines
            }
            return Err(at(format!("{keyword} before the first FROM")));
        };
        let kind = match keyword.as_str() {
            "WORKDIR" => StepKind::Workdir(no_variables(&args).map_err(at)?.to_string()),
            "COPY" => StepKind::Copy(parse_copy(&args).map_err(at)?),
            "RUN" => StepKind::Run(parse_run(&args).map_err(at)?),
            "ENV" => StepKind::Env(parse_env(&args).map_err(at)?),
            "ARG" => StepKind::Env(parse_arg(&args).map_err(at)?),
            "LABEL" | "EXPOSE" | "ENTRYPOINT" | "CMD" | "HEALTHCHECK" | "STOPSIGNAL" | "MAINTAINER" => {
                StepKind::Metadata(keyword)
            }
            "ADD" | "USER" | "SHELL" | "VOLUME" | "ONBUILD" => StepKind::Unreplayable(keyword),
            other => return Err(at(format!("unknown instruction {other}"))),
        };
        stage.steps.push(Step { line, kind });
    }
    Ok(stages)
}

/// Joins continued lines; returns each instruction with the line it starts on.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut in_directives = true;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if in_directives {
            if let Some((key, value)) = trimmed.strip_prefix('#').and_then(|d| d.split_once('=')) {
                if key.trim().eq_ignore_ascii_case("escape") && value.trim() != "\\" {
                    return Err(format!("line {}: only the default escape character is replayed", i + 1));
                }
                continue;
            }
            in_directives = false;
        }
        // Blank lines may also sit inside a continued instruction; Docker skips them there too.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        let body = raw.trim_end();
        match body.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                current = Some((start, acc));
            }
            None => {
                acc.push_str(body);
                out.push((start, acc.trim().to_string()));
            }
        }
    }
    if let Some((start, acc)) = current {
        out.push((start, acc.trim().to_string()));
    }
    Ok(out)
}

fn parse_from(args: &str) -> Result<Stage, String> {
    let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
    match words.as_slice() {
        [image] => Ok(Stage { image: image.to_string(), name: None, steps: Vec::new() }),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            Ok(Stage { image: image.to_string(), name: Some(name.to_string()), steps: Vec::new() })
        }
        _ => Err(format!("cannot read FROM {args}")),
    }
}

/// Leading `--flag[=value]` words, then the rest.
fn split_flags(args: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (flag, tail) = after.split_at(end);
        match flag.split_once('=') {
            Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
            None => flags.push((flag.to_string(), None)),
        }
        rest = tail.trim_start();
    }
    (flags, rest)
}

/// JSON form if the arguments are a JSON array of strings (Docker falls back to the shell form
/// otherwise).
fn json_form(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str(args).ok()
}

fn parse_copy(args: &str) -> Result<Copy, String> {
    let (flags, rest) = split_flags(args);
    let mut from = None;
    for (flag, value) in flags {
        match (flag.as_str(), value) {
            ("from", Some(v)) => from = Some(v),
            // Ownership and mode bits do not change what cargo builds; --link only changes layering.
            ("chown" | "chmod", Some(_)) | ("link", _) => {}
            (other, _) => return Err(format!("COPY --{other} is not replayed")),
        }
    }
    let mut words = json_form(rest).unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect());
    if words.len() < 2 {
        return Err(format!("COPY needs a source and a destination: {args}"));
    }
    let dest = words.pop().unwrap_or_default();
    for word in words.iter().chain([&dest]) {
        no_variables(word)?;
        if word.contains(['*', '?', '[']) {
            return Err(format!("COPY wildcards are not replayed: {word}"));
        }
    }
    if words.len() > 1 && !dest.ends_with('/') {
        return Err(format!("COPY with several sources needs a destination ending in /: {args}"));
    }
    Ok(Copy { from, sources: words, dest })
}

fn parse_run(args: &str) -> Result<Run, String> {
    let (flags, rest) = split_flags(args);
    if let Some((flag, _)) = flags.first() {
        // A cache or secret mount, or another network, changes what the command sees.
        return Err(format!("RUN --{flag} is not replayed"));
    }
    Ok(match json_form(rest) {
        Some(argv) if !argv.is_empty() => Run::Exec(argv),
        _ => Run::Shell(rest.to_string()),
    })
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

fn parse_env(args: &str) -> Result<Vec<(String, String)>, String> {
    no_variables(args)?;
    let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if first.is_empty() {
        return Err("empty ENV".to_string());
    }
    if !first.contains('=') {
        // Legacy `ENV NAME value with spaces`.
        return Ok(vec![(first.to_string(), rest.trim().to_string())]);
    }
    args.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.starts_with('"') || v.len() > 1 && v.ends_with('"') => {
                Ok((k.to_string(), unquote(v).to_string()))
            }
            _ => Err(format!("ENV {pair}: only NAME=value words without spaces are replayed")),
        })
        .collect()
}

fn parse_arg(args: &str) -> Result<Vec<(String, String)>, String> {
    no_variables(args)?;
    match args.trim().split_once('=') {
        Some((k, v)) => Ok(vec![(k.to_string(), unquote(v).to_string())]),
        // An ARG without a default is empty unless --build-arg sets it; a plain build sets none.
        None => Ok(Vec::new()),
    }
}

fn no_variables(text: &str) -> Result<&str, String> {
    if text.contains('$') {
        return Err(format!("variable substitution is not replayed: {text}"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# syntax=docker/dockerfile:1
# a comment
FROM rust:1 AS build
workdir /src
COPY --chown=1:1 Cargo.toml Cargo.lock ./
RUN mkdir src \
    # a comment inside the instruction is dropped
    && echo 'fn main() {}' > src/main.rs \

    && cargo build
COPY ["src", "./src"]
RUN ["cargo", "build"]
ENV A=1 B="two"
FROM gcr.io/distroless/cc
COPY --from=build /src/target/release/app /app
USER 65532
"#;

    #[test]
    fn reads_stages_continuations_comments_and_both_forms() {
        let stages = parse(SAMPLE).unwrap();
        assert_eq!(stages.len(), 2);
        let build = &stages[0];
        assert_eq!((build.image.as_str(), build.name.as_deref()), ("rust:1", Some("build")));
        let kinds: Vec<&StepKind> = build.steps.iter().map(|s| &s.kind).collect();
        assert_eq!(kinds[0], &StepKind::Workdir("/src".into()));
        assert_eq!(
            kinds[1],
            &StepKind::Copy(Copy {
                from: None,
                sources: vec!["Cargo.toml".into(), "Cargo.lock".into()],
                dest: "./".into()
            })
        );
        let StepKind::Run(Run::Shell(cmd)) = kinds[2] else { panic!("{:?}", kinds[2]) };
        assert_eq!(cmd, "mkdir src     && echo 'fn main() {}' > src/main.rs     && cargo build");
        assert_eq!(build.steps[2].line, 6);
        assert_eq!(kinds[3], &StepKind::Copy(Copy { from: None, sources: vec!["src".into()], dest: "./src".into() }));
        assert_eq!(kinds[4], &StepKind::Run(Run::Exec(vec!["cargo".into(), "build".into()])));
        assert_eq!(kinds[5], &StepKind::Env(vec![("A".into(), "1".into()), ("B".into(), "two".into())]));
        let last = &stages[1];
        assert_eq!(last.name, None);
        let copy = last.copies().next().unwrap();
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert_eq!(copy.sources, vec!["/src/target/release/app".to_string()]);
        assert_eq!(copy.dest, "/app");
    }

    #[test]
    fn refuses_what_it_could_not_replay_faithfully() {
        for bad in [
            "FROM a AS b\nCOPY src/*.rs ./",
            "FROM a AS b\nRUN --mount=type=cache,target=/x cargo build",
            "FROM a AS b\nCOPY a b dir",
            "FROM a AS b\nWORKDIR $HOME",
            "# escape=`\nFROM a",
            "RUN true",
            "FROM a\nFOO bar",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
