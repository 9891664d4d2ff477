//! Accidental-delete prevention (reference part 2 §2): the `SyncNotificationSettings` secret and
//! the threshold a run's deletes are held at.

use serde_json::Value;

/// The service's default when the secret says nothing: enabled, 500.
pub const DEFAULT_THRESHOLD: u64 = 500;

/// The threshold is exclusive: at 500, at most 499 deletes run; 500 or more are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteThreshold {
    pub enabled: bool,
    pub value: u64,
}

impl Default for DeleteThreshold {
    fn default() -> Self {
        Self { enabled: true, value: DEFAULT_THRESHOLD }
    }
}

impl DeleteThreshold {
    pub fn holds(self, deletes: u64) -> bool {
        self.enabled && deletes >= self.value
    }
}

/// Parses `{"Enabled":true,"Recipients":"ops@contoso.com","DeleteThresholdEnabled":true,
/// "DeleteThresholdValue":50}`. Field names match case-insensitively and unknown fields are
/// ignored, as the service's .NET deserializer does; absent fields keep the defaults ("{}" is
/// accepted, reference §3.1). Wrong types are refused.
pub fn parse_notification_settings(value: &str) -> Result<DeleteThreshold, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(value) else {
        return Err("The value of the SyncNotificationSettings secret is not a valid JSON object.".into());
    };
    let mut t = DeleteThreshold::default();
    for (k, v) in &map {
        match k.to_ascii_lowercase().as_str() {
            "enabled" if !v.is_boolean() => return Err(format!("'{k}' must be a boolean.")),
            "recipients" if !(v.is_string() || v.is_null()) => return Err(format!("'{k}' must be a string.")),
            "deletethresholdenabled" => {
                t.enabled = v.as_bool().ok_or_else(|| format!("'{k}' must be a boolean."))?;
            }
            "deletethresholdvalue" => {
                t.value = v
                    .as_u64()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("'{k}' must be a positive integer, not {v}."))?;
            }
            _ => {}
        }
    }
    Ok(t)
}

/// The threshold a service principal's secret set configures.
pub fn threshold_of(secrets: &[(String, String)]) -> DeleteThreshold {
    secrets
        .iter()
        .find(|(k, _)| k == "SyncNotificationSettings")
        .and_then(|(_, v)| parse_notification_settings(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let t = parse_notification_settings(
            r#"{"Enabled":true,"Recipients":"ops@contoso.com","DeleteThresholdEnabled":true,"DeleteThresholdValue":50}"#,
        )
        .unwrap();
        assert_eq!(t, DeleteThreshold { enabled: true, value: 50 });
        assert!(t.holds(50) && !t.holds(49), "exclusive limit");
        assert_eq!(parse_notification_settings("{}").unwrap(), DeleteThreshold::default());
        let t = parse_notification_settings(r#"{"deleteThresholdEnabled":false}"#).unwrap();
        assert!(!t.holds(1_000_000));
        for bad in [
            "",
            "[]",
            "not json",
            r#"{"DeleteThresholdValue":"50"}"#,
            r#"{"DeleteThresholdValue":0}"#,
            r#"{"DeleteThresholdValue":-3}"#,
            r#"{"DeleteThresholdEnabled":"yes"}"#,
            r#"{"Enabled":1}"#,
            r#"{"Recipients":["a@b.c"]}"#,
        ] {
            assert!(parse_notification_settings(bad).is_err(), "{bad}");
        }
        let secrets = vec![("SyncNotificationSettings".to_owned(), r#"{"DeleteThresholdValue":7}"#.to_owned())];
        assert_eq!(threshold_of(&secrets).value, 7);
        assert_eq!(threshold_of(&[]), DeleteThreshold::default());
    }
}
