//! The README against the code it documents: the troubleshooting table has a row for every reason
//! that needs the user, every in-progress reason is explained below it, and the flag table of
//! "Running the operator" names every flag of `cloudsync-operator run`.

use std::collections::BTreeSet;
use std::process::Command;

use cloudsync_operator::reconcile::{Kind, Reason};

use crate::support::kube_env::repo_root;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

/// The text of the `## title` section, up to the next `## ` heading.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let heading = format!("\n## {title}\n");
    let start = text.find(&heading).unwrap_or_else(|| panic!("README has no section {title:?}")) + heading.len();
    let end = text[start..].find("\n## ").map_or(text.len(), |i| start + i);
    &text[start..end]
}

fn reasons(kind: Kind) -> Vec<&'static str> {
    Reason::ALL.iter().filter(|r| r.kind() == kind).map(|r| r.as_str()).collect()
}

/// The reasons named in the first cell of the troubleshooting table's rows, e.g.
/// "| `WorkloadIdentityNotAllowed` / `WorkloadIdentityUnavailable` | ...".
fn table_reasons(section: &str) -> BTreeSet<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn troubleshooting_table_has_a_row_for_every_reason_that_needs_the_user() {
    let text = readme();
    let troubleshooting = section(&text, "Troubleshooting by condition reason");
    let rows = table_reasons(troubleshooting);
    let missing: Vec<&str> = reasons(Kind::NeedsUser).into_iter().filter(|r| !rows.contains(*r)).collect();
    assert!(missing.is_empty(), "no troubleshooting row for {missing:?}; rows: {rows:?}");
    let unknown: Vec<&String> = rows.iter().filter(|r| Reason::from_name(r).is_none()).collect();
    assert!(unknown.is_empty(), "the troubleshooting table names reasons the operator does not write: {unknown:?}");

    let progress: Vec<&str> =
        reasons(Kind::Progress).into_iter().filter(|r| !troubleshooting.contains(&format!("`{r}`"))).collect();
    assert!(progress.is_empty(), "in-progress reasons not explained under the table: {progress:?}");
}

#[test]
fn flag_table_names_every_flag_of_run() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cloudsync-operator")).args(["run", "--help"]).output().expect("run --help");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8(out.stdout).expect("UTF-8 help");
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '[']).next())
        .filter(|f| *f != "help")
        .collect();
    assert!(flags.len() >= 15, "parsed too few flags from:\n{help}");
    let text = readme();
    let running = section(&text, "Running the operator");
    let missing: Vec<&&str> = flags.iter().filter(|f| !running.contains(&format!("`--{f}`"))).collect();
    assert!(missing.is_empty(), "README's flag table lacks {missing:?}");
}
