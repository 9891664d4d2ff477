//! Graph wire types for the calls the operator makes, written to tolerate what the service really
//! sends (reference §1–§3): unknown fields are ignored, any field may be null or absent,
//! timestamps carry 7 fractional digits or the `0001-01-01T00:00:00Z` "never" sentinel,
//! schedule intervals reach .NET's TimeSpan.MaxValue, and `synchronizationJobSettings` is an array
//! although the resource page types it as one object.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

/// The cloud sync application template (AD to Entra ID), the same in every cloud.
pub const CLOUD_SYNC_TEMPLATE_ID: &str = "1a4721b3-e57f-4451-ae87-ef078703ec94";

/// Job templates of a cloud sync service principal that the operator runs.
pub const PROVISIONING_TEMPLATE: &str = "AD2AADProvisioning";
pub const PASSWORD_HASH_TEMPLATE: &str = "AD2AADPasswordHash";

/// An OData collection page.
#[derive(Clone, Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Collection<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub display_name: Option<String>,
    /// true: synced; false: previously synced; null: never synced.
    pub on_premises_sync_enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    pub application_template_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    pub application_template_id: Option<String>,
    /// Free-form strings; the operator keeps its owner tag here.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// `applicationServicePrincipal`, the answer of instantiate.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Instantiated {
    pub application: Application,
    pub service_principal: ServicePrincipal,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizationJob {
    pub id: String,
    pub template_id: Option<String>,
    pub schedule: Option<Schedule>,
    pub status: Option<SynchronizationStatus>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub synchronization_job_settings: Vec<KeyValue>,
}

impl SynchronizationJob {
    /// The template this job runs. Falls back to the id's first segment: the id starts with the
    /// template name, and CS-DOC's sample answer echoes a wrong `templateId`.
    pub fn template(&self) -> &str {
        match self.template_id.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => self.id.split('.').next().unwrap_or_default(),
        }
    }

    pub fn schedule_state(&self) -> Option<&ScheduleState> {
        self.schedule.as_ref().and_then(|s| s.state.as_ref())
    }

    pub fn code(&self) -> Option<&StatusCode> {
        self.status.as_ref().and_then(|s| s.code.as_ref())
    }

    /// The schedule runs (state Active).
    pub fn is_scheduled(&self) -> bool {
        self.schedule_state() == Some(&ScheduleState::Active)
    }

    pub fn is_quarantined(&self) -> bool {
        self.code() == Some(&StatusCode::Quarantine)
    }

    /// When the job's last execution began, if it ever ran.
    pub fn last_run_began(&self) -> Option<Timestamp> {
        self.status.as_ref()?.last_execution.as_ref()?.time_began
    }
}

/// Declares a Graph string enum that keeps values it does not know (the service adds members over
/// time; an unknown one must not make a whole job list unreadable).
macro_rules! graph_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this operator does not know yet, kept as sent.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $(stringify!($variant) => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?.as_str()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

graph_enum!(
    /// `synchronizationSchedule.state`.
    ScheduleState { Active, Disabled, Paused }
);

graph_enum!(
    /// `synchronizationStatus.code`.
    StatusCode { NotConfigured, NotRun, Active, Paused, Quarantine }
);

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    #[serde(default, deserialize_with = "graph_time")]
    pub expiration: Option<Timestamp>,
    #[serde(default, deserialize_with = "iso_duration")]
    pub interval: Option<Duration>,
    pub state: Option<ScheduleState>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizationStatus {
    pub code: Option<StatusCode>,
    pub count_successive_complete_failures: Option<i64>,
    pub escrows_pruned: Option<bool>,
    pub last_execution: Option<TaskExecution>,
    pub last_successful_execution: Option<TaskExecution>,
    pub quarantine: Option<Quarantine>,
    #[serde(default, deserialize_with = "graph_time")]
    pub steady_state_first_achieved_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub steady_state_last_achieved_time: Option<Timestamp>,
    pub troubleshooting_url: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskExecution {
    /// Succeeded, Failed or EntryLevelErrors.
    pub state: Option<String>,
    pub error: Option<SynchronizationError>,
    #[serde(default, deserialize_with = "graph_time")]
    pub time_began: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub time_ended: Option<Timestamp>,
    pub count_exported: Option<i64>,
    pub count_imported: Option<i64>,
    /// Objects the run could not process and will retry (escrows).
    pub count_escrowed: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizationError {
    pub code: Option<String>,
    pub message: Option<String>,
    pub tenant_actionable: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Quarantine {
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "graph_time")]
    pub current_began: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub next_attempt: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub series_began: Option<Timestamp>,
    pub series_count: Option<i64>,
    pub error: Option<SynchronizationError>,
}

/// `keyValuePair` (job settings) and `synchronizationSecretKeyStringValuePair` (secrets).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct KeyValue {
    #[serde(alias = "name")]
    pub key: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizationTemplate {
    pub id: String,
    pub factory_tag: Option<String>,
    pub description: Option<String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Timestamps: `None` for null, absent, unparseable and the `0001-01-01` "never" sentinel. An odd
/// timestamp must not make a whole job list unreadable.
fn graph_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.as_deref().and_then(parse_graph_time))
}

/// Seconds since the epoch before which a timestamp is .NET's DateTime.MinValue ("never"), not a
/// time (0001-01-01 is -62,135,596,800).
const NEVER_BEFORE: i64 = -62_000_000_000;

pub fn parse_graph_time(s: &str) -> Option<Timestamp> {
    let t: Timestamp = s.parse().ok().or_else(|| format!("{s}Z").parse().ok())?;
    (t.as_second() > NEVER_BEFORE).then_some(t)
}

fn iso_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.as_deref().and_then(parse_iso_duration))
}

/// ISO 8601 durations as .NET writes TimeSpans: `PnDTnHnMn.nS` (weeks too). Hand-written because
/// jiff's `Span` caps days far below TimeSpan.MaxValue (`P10675199DT2H48M5.4775807S`), which new
/// and disabled jobs report.
pub fn parse_iso_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = Duration::ZERO;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800.0), ('D', 86_400.0)][..]),
        (time.unwrap_or(""), &[('H', 3600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        let mut unit_index = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            let pos = units.iter().skip(unit_index).position(|(u, _)| *u == c)? + unit_index;
            let value: f64 = number.parse().ok()?;
            let whole = value.trunc();
            let secs = (whole as u64).checked_mul(units[pos].1 as u64)?;
            let frac = Duration::from_secs_f64((value - whole) * units[pos].1);
            total = total.checked_add(Duration::from_secs(secs))?.checked_add(frac)?;
            number.clear();
            unit_index = pos + 1;
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
    }
    if time == Some("") {
        return None;
    }
    any.then_some(total)
}

/// Quotes a string for an OData `$filter` literal: `'` becomes `''`.
pub fn odata_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_from_the_docs_with_every_quirk() {
        // CS-DOC's create answer: 2-part id, wrong templateId echo, nulls, sentinels.
        let json = r#"{
            "@odata.context": "https://graph.microsoft.com/beta/$metadata#servicePrincipals('614ac0e9-a59b-481f-bd8f-79a73d167e1c')/synchronization/jobs/$entity",
            "id": "AD2AADProvisioning.fc96887f36da47508c935c28a0c0b6da",
            "templateId": "ADDCInPassthrough",
            "schedule": {"expiration": null, "interval": "PT40M", "state": "Disabled"},
            "status": {
                "countSuccessiveCompleteFailures": 0, "escrowsPruned": false, "code": "Paused",
                "lastExecution": null, "lastSuccessfulExecution": null, "lastSuccessfulExecutionWithExports": null,
                "quarantine": null,
                "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
                "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z",
                "troubleshootingUrl": null, "progress": [], "synchronizedEntryCountByType": []
            }
        }"#;
        let job: SynchronizationJob = serde_json::from_str(json).unwrap();
        assert_eq!(job.schedule_state(), Some(&ScheduleState::Disabled));
        assert_eq!(job.code(), Some(&StatusCode::Paused));
        let status = job.status.unwrap();
        assert_eq!(status.steady_state_last_achieved_time, None, "sentinel means never");
        assert_eq!(job.schedule.unwrap().interval, Some(Duration::from_secs(40 * 60)));
        assert!(job.synchronization_job_settings.is_empty());
    }

    #[test]
    fn live_job_with_three_part_id_settings_array_and_quarantine() {
        let json = r#"{
            "id": "AD2AADProvisioning.0a1b2c3d4e5f60718293a4b5c6d7e8f9.11111111-2222-3333-4444-555555555555",
            "templateId": "AD2AADProvisioning",
            "schedule": {"expiration": null, "interval": "P10675199DT2H48M5.4775807S", "state": "Active"},
            "status": {
                "code": "Quarantine",
                "lastExecution": {"state": "Failed", "timeBegan": "2026-11-26T10:00:00.1234567Z",
                    "timeEnded": "2026-11-26T10:00:05.7654321Z", "countExported": 0, "activityIdentifier": "x",
                    "error": {"code": "HybridIdentityServiceNoActiveAgents", "message": "no agents", "tenantActionable": true}},
                "quarantine": {"currentBegan": "2026-11-26T10:00:05.1234567Z", "nextAttempt": "2026-11-26T16:00:05.1234567Z",
                    "seriesBegan": "2026-11-26T10:00:05.1234567Z", "seriesCount": 1, "reason": "EncounteredQuarantineException",
                    "error": {"code": "HybridIdentityServiceNoActiveAgents", "message": "no agents", "tenantActionable": true}},
                "steadyStateLastAchievedTime": "2026-11-25T09:59:59.9999999Z",
                "troubleshootingUrl": "",
                "someFutureField": {"nested": [1, 2]}
            },
            "synchronizationJobSettings": [
                {"name": "Domain", "value": "{\"DomainFQDN\":\"contoso.com\"}"},
                {"name": "QuarantineTooManyDeletesThreshold", "value": "500"}
            ]
        }"#;
        let job: SynchronizationJob = serde_json::from_str(json).unwrap();
        assert_eq!(job.template(), "AD2AADProvisioning");
        let interval = job.schedule.as_ref().unwrap().interval.unwrap();
        assert_eq!(interval.as_secs(), 10_675_199 * 86_400 + 2 * 3600 + 48 * 60 + 5);
        let status = job.status.unwrap();
        let last = status.last_execution.unwrap();
        assert_eq!(last.time_began.unwrap().to_string(), "2026-11-26T10:00:00.1234567Z");
        assert_eq!(last.error.unwrap().code.as_deref(), Some("HybridIdentityServiceNoActiveAgents"));
        let q = status.quarantine.unwrap();
        assert_eq!(q.reason.as_deref(), Some("EncounteredQuarantineException"));
        assert_eq!(q.series_count, Some(1));
        assert_eq!(job.synchronization_job_settings.len(), 2);
        assert_eq!(job.synchronization_job_settings[1].key, "QuarantineTooManyDeletesThreshold");
    }

    #[test]
    fn unknown_enum_members_are_kept_not_refused() {
        let job: SynchronizationJob =
            serde_json::from_str(r#"{"id":"j","schedule":{"state":"Hibernating"},"status":{"code":"Quarantine"}}"#)
                .unwrap();
        assert_eq!(job.schedule_state(), Some(&ScheduleState::Other("Hibernating".into())));
        assert_eq!(job.schedule_state().map(ScheduleState::as_str), Some("Hibernating"));
        assert!(job.is_quarantined() && !job.is_scheduled());
        assert_eq!(serde_json::to_string(&StatusCode::NotRun).unwrap(), r#""NotRun""#);
    }

    #[test]
    fn template_falls_back_to_the_id_prefix() {
        let job = SynchronizationJob { id: "AD2AADPasswordHash.abc.def".into(), ..Default::default() };
        assert_eq!(job.template(), "AD2AADPasswordHash");
    }

    #[test]
    fn instantiate_answer_keeps_both_ids() {
        let json = r#"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#microsoft.graph.applicationServicePrincipal",
            "application":{"id":"app-obj","appId":"client-1","applicationTemplateId":"1a4721b3-e57f-4451-ae87-ef078703ec94","displayName":"contoso.com","signInAudience":"AzureADMyOrg","tags":[]},
            "servicePrincipal":{"id":"sp-obj","appId":"client-1","applicationTemplateId":"1a4721b3-e57f-4451-ae87-ef078703ec94","displayName":"contoso.com","accountEnabled":true,"tags":["WindowsAzureActiveDirectoryIntegratedApp"]}}"#;
        let r: Instantiated = serde_json::from_str(json).unwrap();
        assert_eq!(r.application.id, "app-obj");
        assert_eq!(r.service_principal.id, "sp-obj");
        assert_eq!(r.service_principal.app_id.as_deref(), Some("client-1"));
    }

    #[test]
    fn collections_tolerate_null_value_and_next_links() {
        let c: Collection<KeyValue> =
            serde_json::from_str(r#"{"@odata.context":"x","value":null,"@odata.nextLink":"https://next"}"#).unwrap();
        assert!(c.value.is_empty());
        assert_eq!(c.next_link.as_deref(), Some("https://next"));
        let masked: Collection<KeyValue> =
            serde_json::from_str(r#"{"value":[{"key":"Domain","value":"*"},{"key":"AppKey","value":null}]}"#).unwrap();
        assert_eq!(masked.value[0].value, "*");
        assert_eq!(masked.value[1].value, "");
    }

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("PT2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_iso_duration("PT40M"), Some(Duration::from_secs(2400)));
        assert_eq!(parse_iso_duration("P1DT1H"), Some(Duration::from_secs(90_000)));
        assert_eq!(parse_iso_duration("P2W"), Some(Duration::from_secs(1_209_600)));
        assert_eq!(parse_iso_duration("PT0.5S"), Some(Duration::from_millis(500)));
        let max = parse_iso_duration("P10675199DT2H48M5.4775807S").unwrap();
        assert_eq!(max.as_secs(), 922_337_203_685);
        assert_eq!(max.subsec_millis(), 477);
        for bad in ["", "P", "PT", "2M", "PT2X", "PT2", "PM2T", "PT2M1H"] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn graph_times() {
        assert_eq!(parse_graph_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_graph_time("not a time"), None);
        assert!(parse_graph_time("2026-11-26T12:00:00.1234567Z").is_some());
        // Graph's error envelope writes innerError.date without a zone.
        assert!(parse_graph_time("2026-07-14T00:17:15").is_some());
    }

    #[test]
    fn odata_quotes_are_doubled() {
        assert_eq!(odata_quote("O'Brien.com"), "'O''Brien.com'");
        assert_eq!(odata_quote("contoso.com"), "'contoso.com'");
    }
}
