//! Replays one build stage of a Dockerfile on this machine, as `docker build` would run it but
//! without an engine: a scratch directory stands for the stage's WORKDIR; each COPY brings in
//! exactly the files it names from the build context (the repository less what `.dockerignore`
//! keeps out); each RUN runs there with `/bin/sh -c`, in Dockerfile order, offline, with this
//! user's toolchain and cargo registry cache and none of the environment of the test run.
//!
//! Kept fast on a warm cache: the scratch directory persists between runs, and so does its
//! cargo `target/` (as a builder's cache would). Every other file left from the previous run is
//! moved aside first, so each step sees only what the steps before it brought or made; a COPY
//! moves an unchanged file back (mtime kept) and writes only what changed; what no step brought
//! again is deleted at the end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::dockerignore::Rules;
use super::instructions::{Copy, Run, Stage, StepKind};

/// The build cache kept across runs, relative to WORKDIR.
const KEPT: &str = "target";

pub struct Context<'a> {
    pub root: &'a Path,
    pub ignore: &'a Rules,
}

pub struct Built {
    /// The stage's first WORKDIR, which the scratch directory stands for.
    pub workdir: String,
    pub scratch: PathBuf,
    /// Held while the result is looked at, so that another replay cannot change it meanwhile.
    _lock: fs::File,
}

impl Built {
    /// Where a path of the stage's filesystem is in the scratch directory.
    pub fn host_path(&self, container: &str) -> Result<PathBuf, String> {
        map_into(&self.workdir, &self.scratch, container)
    }
}

/// The environment of every RUN: the toolchain's own variables and nothing of the `cargo test`
/// around it (CARGO_TARGET_DIR, RUSTFLAGS, CARGO_* of the test crate would all change the build).
///
/// One deliberate difference from `docker build`: the release profile is built without
/// optimisation and incrementally. What the replay checks — that the manifests load from what the
/// COPY lines bring, that the RUN lines succeed offline, that the binary runs and links only
/// against what distroless provides — does not depend on the optimisation level, and an
/// optimised build of every dependency would add a quarter of an hour to a cold CI run on two cores.
pub fn clean_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| matches!(k.as_str(), "PATH" | "HOME" | "CARGO_HOME" | "TMPDIR") || k.starts_with("RUSTUP_"))
        .collect();
    env.push(("CARGO_NET_OFFLINE".into(), "true".into()));
    env.push(("CARGO_PROFILE_RELEASE_OPT_LEVEL".into(), "0".into()));
    env.push(("CARGO_PROFILE_RELEASE_INCREMENTAL".into(), "true".into()));
    env
}

/// Replays `stage` in `state` (a persistent directory). `outputs` are paths of the stage that
/// a later stage copies: they are deleted first, so that only this run can have made them.
pub fn build_stage(stage: &Stage, context: &Context, state: &Path, outputs: &[String]) -> Result<Built, String> {
    let workdir = match stage.steps.iter().find(|s| !matches!(s.kind, StepKind::Env(_) | StepKind::Metadata(_))) {
        Some(step) => match &step.kind {
            StepKind::Workdir(w) if w.starts_with('/') => clean(w),
            _ => return Err(format!("line {}: the stage must set an absolute WORKDIR first", step.line)),
        },
        None => return Err("the build stage is empty".into()),
    };
    fs::create_dir_all(state).map_err(io(state))?;
    // One replay at a time per directory: concurrent `cargo test` runs would share the scratch.
    let lock_path = state.join("lock");
    let lock = fs::File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;

    let scratch = state.join("workdir");
    let previous = state.join("previous");
    remove(&previous)?;
    fs::create_dir_all(&previous).map_err(io(&previous))?;
    fs::create_dir_all(&scratch).map_err(io(&scratch))?;
    for entry in fs::read_dir(&scratch).map_err(io(&scratch))? {
        let entry = entry.map_err(io(&scratch))?;
        if entry.file_name() != KEPT {
            let to = previous.join(entry.file_name());
            fs::rename(entry.path(), &to).map_err(io(&to))?;
        }
    }
    let built = Built { workdir: workdir.clone(), scratch: scratch.clone(), _lock: lock };
    for output in outputs {
        remove(&built.host_path(output)?)?;
    }

    let mut cwd = workdir.clone();
    let mut env = clean_env();
    for step in &stage.steps {
        let at = |e: String| format!("Dockerfile line {}: {e}", step.line);
        let started = Instant::now();
        match &step.kind {
            StepKind::Workdir(w) => {
                cwd = if w.starts_with('/') { clean(w) } else { clean(&format!("{cwd}/{w}")) };
                let dir = built.host_path(&cwd).map_err(at)?;
                fs::create_dir_all(&dir).map_err(io(&dir)).map_err(at)?;
            }
            StepKind::Env(vars) => env.extend(vars.iter().cloned()),
            StepKind::Metadata(_) => {}
            StepKind::Unreplayable(keyword) => return Err(at(format!("{keyword} in the build stage is not replayed"))),
            StepKind::Copy(copy) => copy_step(copy, context, &built, &cwd, &previous).map_err(at)?,
            StepKind::Run(run) => run_step(run, &built.host_path(&cwd).map_err(at)?, &env).map_err(at)?,
        }
        let took = started.elapsed().as_secs_f64();
        if took >= 0.5 {
            eprintln!("replay: Dockerfile line {} took {took:.1}s", step.line);
        }
    }
    remove(&previous)?;
    Ok(built)
}

fn copy_step(copy: &Copy, context: &Context, built: &Built, cwd: &str, previous: &Path) -> Result<(), String> {
    if let Some(stage) = &copy.from {
        return Err(format!("COPY --from={stage} inside the build stage is not replayed"));
    }
    let dest = if copy.dest.starts_with('/') { copy.dest.clone() } else { format!("{cwd}/{}", copy.dest) };
    let dest_dir = copy.dest.ends_with('/') || copy.sources.len() > 1 || built.host_path(&dest)?.is_dir();
    for source in &copy.sources {
        let (kind, files) = context.files(source)?;
        for (file, below) in files {
            let target = match (kind, dest_dir) {
                (Kind::Dir, _) => format!("{dest}/{below}"),
                (Kind::File, true) => format!("{dest}/{below}"),
                (Kind::File, false) => dest.clone(),
            };
            let target = clean(&target);
            let host = built.host_path(&target)?;
            let relative = target.strip_prefix(&built.workdir).unwrap_or(&target).trim_start_matches('/');
            sync_file(&file, &host, &previous.join(relative))?;
        }
    }
    Ok(())
}

/// Puts `source`'s content at `dest`, touching nothing when it is already there and moving the
/// previous run's copy back when that one is unchanged, so that mtimes stay as they were.
fn sync_file(source: &Path, dest: &Path, previous: &Path) -> Result<(), String> {
    let content = fs::read(source).map_err(io(source))?;
    if fs::read(dest).is_ok_and(|c| c == content) {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    if fs::read(previous).is_ok_and(|c| c == content) {
        return fs::rename(previous, dest).map_err(io(dest));
    }
    fs::write(dest, &content).map_err(io(dest))?;
    let mode = fs::metadata(source).map_err(io(source))?.permissions();
    fs::set_permissions(dest, mode).map_err(io(dest))
}

fn run_step(run: &Run, cwd: &Path, env: &[(String, String)]) -> Result<(), String> {
    let (mut command, shown) = match run {
        Run::Shell(line) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            (c, line.clone())
        }
        Run::Exec(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            (c, argv.join(" "))
        }
    };
    let words: Vec<&str> = match run {
        Run::Shell(line) => line.split(|c: char| c.is_whitespace() || ";&|()<>='\"".contains(c)).collect(),
        Run::Exec(argv) => argv.iter().map(String::as_str).collect(),
    };
    if let Some(word) = words.iter().find(|w| w.starts_with(['/', '~']) || w.split('/').any(|p| p == "..")) {
        // This runs on the machine itself, not in a container: a path outside WORKDIR would
        // read or change the host.
        return Err(format!("RUN {shown}: `{word}` leaves WORKDIR, which a replay on this machine cannot contain"));
    }
    let out = command
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("RUN {shown}: cannot start: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "RUN {shown}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            tail.join("\n")
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    File,
    Dir,
}

impl Context<'_> {
    /// The context's files under `source`, each with its path below `source` (its file name for
    /// a file), as a COPY of `source` sees them.
    fn files(&self, source: &str) -> Result<(Kind, Vec<(PathBuf, String)>), String> {
        let rel = clean(&format!("/{source}")).trim_start_matches('/').to_string();
        let not_found = || format!("COPY {source}: not found in the build context (is it in .dockerignore?)");
        let host = if rel.is_empty() { self.root.to_path_buf() } else { self.root.join(&rel) };
        let meta = fs::symlink_metadata(&host).map_err(|_| not_found())?;
        if meta.is_file() {
            if self.ignore.excludes(&rel) {
                return Err(not_found());
            }
            let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
            return Ok((Kind::File, vec![(host, name)]));
        }
        if !meta.is_dir() {
            return Err(format!("COPY {source}: only files and directories are replayed"));
        }
        let mut files = Vec::new();
        self.walk(&host, &rel, "", &mut files)?;
        if files.is_empty() && !rel.is_empty() && self.ignore.excludes(&rel) {
            return Err(not_found());
        }
        Ok((Kind::Dir, files))
    }

    fn walk(&self, dir: &Path, rel: &str, below: &str, out: &mut Vec<(PathBuf, String)>) -> Result<(), String> {
        let mut entries: Vec<_> = fs::read_dir(dir).map_err(io(dir))?.collect::<Result<_, _>>().map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let child_below = if below.is_empty() { name.clone() } else { format!("{below}/{name}") };
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            let excluded = self.ignore.excludes(&child_rel);
            if kind.is_dir() {
                if !excluded || self.ignore.may_include_below(&child_rel) {
                    self.walk(&entry.path(), &child_rel, &child_below, out)?;
                }
            } else if !excluded {
                if !kind.is_file() {
                    return Err(format!("{child_rel}: only files and directories are replayed"));
                }
                out.push((entry.path(), child_below));
            }
        }
        Ok(())
    }
}

fn map_into(workdir: &str, scratch: &Path, container: &str) -> Result<PathBuf, String> {
    let path = clean(container);
    match path.strip_prefix(workdir) {
        Some("") => Ok(scratch.to_path_buf()),
        Some(rest) if rest.starts_with('/') => Ok(scratch.join(rest.trim_start_matches('/'))),
        _ => Err(format!("{container} is outside WORKDIR {workdir}, which the scratch directory stands for")),
    }
}

/// A container path without `.`, `..` and doubled or trailing slashes.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn remove(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io(path)),
        Ok(_) => fs::remove_file(path).map_err(io(path)),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}
