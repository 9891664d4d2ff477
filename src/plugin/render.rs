//! What `kubectl cloudsync status` prints, from the objects alone (no I/O): a profile's jobs,
//! their state, last and next run, quarantine, recent failure codes, its conditions and Graph ids.

use std::fmt::Write;

use jiff::{SignedDuration, Timestamp};

use crate::api::{CloudSyncProfile, JobStatus, ProvisionRequest};

fn or_dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

/// A table with columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count()) + 3;
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

fn condition<'a>(
    p: &'a CloudSyncProfile,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    p.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

/// When the service runs the job next: the quarantine's next attempt, or the last run's start
/// plus the schedule's interval while the job is scheduled.
pub fn next_run(j: &JobStatus, now: Timestamp) -> String {
    if let Some(q) = j.quarantine.as_ref().filter(|_| j.code.as_deref() == Some("Quarantine")) {
        return q.next_attempt.clone().map(|t| format!("{t} (quarantine retry)")).unwrap_or_else(|| "-".into());
    }
    if j.schedule_state.as_deref() != Some("Active") {
        return format!("- ({})", or_dash(j.schedule_state.as_deref()));
    }
    let Some(interval) = j.schedule_interval_seconds.filter(|s| *s > 0) else { return "-".into() };
    let began: Option<Timestamp> =
        j.last_execution.as_ref().and_then(|e| e.time_began.as_deref()).and_then(|t| t.parse().ok());
    match began.and_then(|b| b.checked_add(SignedDuration::from_secs(interval)).ok()) {
        Some(next) if next > now => next.to_string(),
        Some(_) => "due now".into(),
        None => format!("within {}", human(interval)),
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn last_run(j: &JobStatus) -> String {
    match j.last_execution.as_ref() {
        None => "never".into(),
        Some(e) => {
            let when = e.time_ended.as_deref().or(e.time_began.as_deref());
            let mut s = format!("{} {}", or_dash(e.state.as_deref()), or_dash(when));
            if let Some(n) = e.count_escrowed.filter(|n| *n > 0) {
                let _ = write!(s, " ({n} escrowed)");
            }
            s
        }
    }
}

fn quarantine(j: &JobStatus) -> String {
    match j.quarantine.as_ref().filter(|_| j.code.as_deref() == Some("Quarantine")) {
        None => "-".into(),
        Some(q) => {
            let code = q.error.as_ref().and_then(|e| e.code.as_deref());
            match code {
                Some(c) => format!("{} ({c})", or_dash(q.reason.as_deref())),
                None => or_dash(q.reason.as_deref()).to_string(),
            }
        }
    }
}

/// The full view of one profile.
pub fn profile(p: &CloudSyncProfile, requests: &[ProvisionRequest], now: Timestamp) -> String {
    let mut out = String::new();
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let _ = writeln!(out, "Profile:    {ns}/{name}");
    let _ = writeln!(out, "Domain:     {}", p.spec.domain);
    let cloud =
        serde_json::to_value(p.spec.cloud()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let _ = writeln!(out, "Tenant:     {} ({cloud})", p.spec.tenant_id);
    match condition(p, "Ready") {
        Some(c) => {
            let _ = writeln!(out, "Ready:      {} {}: {}", c.status, c.reason, c.message);
        }
        None => {
            let _ = writeln!(out, "Ready:      - (the operator has not written a status yet)");
        }
    }
    let status = p.status.clone().unwrap_or_default();
    if let Some(sp) = &status.service_principal {
        let _ = writeln!(
            out,
            "Graph:      service principal {}, application {}, appId {}",
            sp.id,
            or_dash(sp.application_id.as_deref()),
            or_dash(sp.app_id.as_deref())
        );
    }
    if p.spec.suspend == Some(true) {
        let _ = writeln!(out, "Suspended:  yes (kubectl cloudsync resume {name})");
    }
    if !status.jobs.is_empty() {
        out.push_str("\nJobs:\n");
        let rows: Vec<Vec<String>> = status
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.template_id.clone(),
                    or_dash(j.schedule_state.as_deref()).to_string(),
                    or_dash(j.code.as_deref()).to_string(),
                    last_run(j),
                    next_run(j, now),
                    quarantine(j),
                    or_dash(j.last_successful_run.as_deref()).to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["TEMPLATE", "SCHEDULE", "CODE", "LAST RUN", "NEXT RUN", "QUARANTINE", "LAST SUCCESS"],
            &rows,
        ));
        for j in &status.jobs {
            let _ = writeln!(out, "  {} id {}", j.template_id, j.id);
        }
        for j in &status.jobs {
            let Some(f) = &j.recent_failures else { continue };
            let _ = writeln!(out, "\nRecent failures of {} (run {}):", j.template_id, f.run);
            if let Some(note) = &f.note {
                let _ = writeln!(out, "  {note}");
            }
            let rows: Vec<Vec<String>> =
                f.errors.iter().map(|e| vec![e.code.clone(), e.count.to_string(), e.latest.clone()]).collect();
            if !rows.is_empty() {
                let t = table(&["CODE", "COUNT", "LATEST"], &rows);
                for l in t.lines() {
                    let _ = writeln!(out, "  {l}");
                }
            }
            if f.truncated == Some(true) {
                let _ = writeln!(out, "  (more failures than the operator reads; the counts are a lower bound)");
            }
        }
    }
    if !status.conditions.is_empty() {
        out.push_str("\nConditions:\n");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()])
            .collect();
        for l in table(&["TYPE", "STATUS", "REASON", "MESSAGE"], &rows).lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    if !requests.is_empty() {
        out.push_str("\nProvisionRequests:\n");
        for l in request_table(requests).lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}

/// One line per profile, like `kubectl get csp` with the failure codes.
pub fn profiles(list: &[CloudSyncProfile]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let ready = condition(p, "Ready");
            let status = p.status.clone().unwrap_or_default();
            let code = |t: &str| {
                status
                    .jobs
                    .iter()
                    .find(|j| j.template_id == t)
                    .and_then(|j| j.code.clone())
                    .unwrap_or_else(|| "-".into())
            };
            let failures: Vec<String> = status
                .jobs
                .iter()
                .filter_map(|j| j.recent_failures.as_ref())
                .flat_map(|f| f.errors.iter().map(|e| format!("{}×{}", e.code, e.count)))
                .collect();
            vec![
                p.metadata.name.clone().unwrap_or_default(),
                ready.map(|c| c.status.clone()).unwrap_or_else(|| "-".into()),
                ready.map(|c| c.reason.clone()).unwrap_or_else(|| "-".into()),
                p.spec.domain.clone(),
                code("AD2AADProvisioning"),
                code("AD2AADPasswordHash"),
                if failures.is_empty() { "-".into() } else { failures.join(",") },
            ]
        })
        .collect();
    table(&["NAME", "READY", "REASON", "DOMAIN", "PROVISIONING", "PASSWORDHASH", "RECENT FAILURES"], &rows)
}

pub fn request_table(requests: &[ProvisionRequest]) -> String {
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            let complete = s.conditions.iter().find(|c| c.type_ == "Complete");
            vec![
                r.metadata.name.clone().unwrap_or_default(),
                r.spec.subjects.len().to_string(),
                complete.map(|c| c.status.clone()).unwrap_or_else(|| "-".into()),
                s.result.map(|x| x.as_str().to_string()).unwrap_or_else(|| "-".into()),
                or_dash(s.completion_time.as_deref()).to_string(),
            ]
        })
        .collect();
    table(&["NAME", "SUBJECTS", "COMPLETE", "RESULT", "COMPLETED"], &rows)
}

/// A finished request's steps, per subject.
pub fn request_outcome(r: &ProvisionRequest) -> String {
    let mut out = String::new();
    let s = r.status.clone().unwrap_or_default();
    if let Some(c) = s.conditions.iter().find(|c| c.type_ == "Complete") {
        let _ = writeln!(out, "{}: {}", c.reason, c.message);
    }
    if let Some(c) = s.conditions.iter().find(|c| c.type_ == "OutOfScope" && c.status == "True") {
        let _ = writeln!(out, "warning: {}", c.message);
    }
    for st in &s.subjects {
        let subject = r.spec.subjects.get(st.index as usize);
        let _ = writeln!(
            out,
            "\n[{}] {} {}: {}{}",
            st.index,
            subject.map(|x| x.kind.object_type_name()).unwrap_or("?"),
            subject.map(|x| x.dn.as_str()).unwrap_or("?"),
            st.result.map(|x| x.as_str()).unwrap_or("-"),
            st.error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
        );
        if let Some(m) = &st.message {
            let _ = writeln!(out, "    {m}");
        }
        if !st.steps.is_empty() {
            let rows: Vec<Vec<String>> = st
                .steps
                .iter()
                .map(|x| {
                    vec![
                        x.name.clone(),
                        or_dash(x.step_type.as_deref()).to_string(),
                        or_dash(x.status.as_deref()).to_string(),
                        or_dash(x.error_code.as_deref()).to_string(),
                    ]
                })
                .collect();
            for l in table(&["STEP", "TYPE", "STATUS", "ERROR"], &rows).lines() {
                let _ = writeln!(out, "    {l}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JobExecution, JobQuarantine};

    fn job() -> JobStatus {
        JobStatus {
            template_id: "AD2AADProvisioning".into(),
            id: "AD2AADProvisioning.x.y".into(),
            schedule_state: Some("Active".into()),
            schedule_interval_seconds: Some(120),
            code: Some("Active".into()),
            last_execution: Some(JobExecution {
                state: Some("Succeeded".into()),
                time_began: Some("2026-12-01T10:00:00Z".into()),
                time_ended: Some("2026-12-01T10:00:30Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_next_run_follows_the_schedule_or_the_quarantine() {
        let now: Timestamp = "2026-12-01T10:01:00Z".parse().unwrap();
        assert_eq!(next_run(&job(), now), "2026-12-01T10:02:00Z");
        assert_eq!(next_run(&job(), "2026-12-01T10:05:00Z".parse().unwrap()), "due now");
        let mut q = job();
        q.code = Some("Quarantine".into());
        q.quarantine = Some(JobQuarantine { next_attempt: Some("2026-12-01T16:00:00Z".into()), ..Default::default() });
        assert_eq!(next_run(&q, now), "2026-12-01T16:00:00Z (quarantine retry)");
        let mut paused = job();
        paused.schedule_state = Some("Paused".into());
        assert_eq!(next_run(&paused, now), "- (Paused)");
    }

    #[test]
    fn tables_pad_to_the_widest_cell() {
        let t = table(&["A", "B"], &[vec!["long value".into(), "x".into()], vec!["s".into(), "y".into()]]);
        assert_eq!(t, "A            B\nlong value   x\ns            y\n");
    }
}
