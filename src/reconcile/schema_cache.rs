//! What the operator remembers about schemas between passes, in memory: the templates' default
//! schemas, `parseExpression` verdicts by expression text, and when each profile's schema was
//! last read. Losing it (a restart) costs one read per profile and one parse per expression;
//! keeping it is what lets a steady profile make no schema calls between drift checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

use super::schema::Parsed;

/// Defaults by (service principal, template). A default is a few hundred KiB and the same in
/// every tenant, so equal ones share one copy: 100 tenants kept 100 copies (53 MiB RSS in the
/// scale benchmark, against 23 MiB before the cache).
#[derive(Default)]
struct Templates {
    by_key: HashMap<(String, String), (Instant, Arc<Value>)>,
    /// By sha256 of the JSON text.
    by_content: HashMap<String, Arc<Value>>,
}

/// A template's default changes with service releases, not between passes.
const TEMPLATE_TTL: Duration = Duration::from_secs(6 * 3600);

/// Bounds the verdicts kept; beyond it the oldest half is dropped (the parse is cheap to redo).
const MAX_PARSED: usize = 10_000;

#[derive(Default)]
pub struct SchemaCache {
    templates: Mutex<Templates>,
    parsed: Mutex<HashMap<String, (Instant, Parsed)>>,
    checked: Mutex<HashMap<String, Instant>>,
}

impl SchemaCache {
    /// The default schema of `template` on service principal `sp`, if read recently.
    /// A pass gets the shared copy itself: it only reads it.
    pub fn template(&self, sp: &str, template: &str) -> Option<Arc<Value>> {
        let t = self.templates.lock().ok()?;
        let (at, v) = t.by_key.get(&(sp.to_string(), template.to_string()))?;
        (at.elapsed() < TEMPLATE_TTL).then(|| v.clone())
    }

    /// Keeps `schema` (the copy equal to it, if one is kept already) and returns the kept copy.
    pub fn keep_template(&self, sp: &str, template: &str, mut schema: Value) -> Arc<Value> {
        // OData annotations name the service principal; the schema itself is what is shared.
        if let Some(m) = schema.as_object_mut() {
            m.retain(|k, _| !k.starts_with('@'));
        }
        let content = hex::encode(sha2::Sha256::digest(schema.to_string().as_bytes()));
        let Ok(mut t) = self.templates.lock() else { return Arc::new(schema) };
        t.by_key.retain(|_, (at, _)| at.elapsed() < TEMPLATE_TTL);
        t.by_content.retain(|_, v| Arc::strong_count(v) > 1);
        let shared = t.by_content.entry(content).or_insert_with(|| Arc::new(schema)).clone();
        t.by_key.insert((sp.to_string(), template.to_string()), (Instant::now(), shared.clone()));
        shared
    }

    pub fn parsed(&self, expression: &str) -> Option<Parsed> {
        self.parsed.lock().ok()?.get(expression).map(|(_, p)| p.clone())
    }

    pub fn keep_parsed(&self, expression: &str, parsed: &Parsed) {
        if let Ok(mut map) = self.parsed.lock() {
            if map.len() >= MAX_PARSED {
                let mut ages: Vec<Instant> = map.values().map(|(at, _)| *at).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                map.retain(|_, (at, _)| *at > cut);
            }
            map.insert(expression.to_string(), (Instant::now(), parsed.clone()));
        }
    }

    /// Whether the profile's schema is due for a drift check (never read by this process, or
    /// read more than `interval` ago).
    pub fn check_due(&self, profile: &str, interval: Duration) -> bool {
        self.checked.lock().ok().and_then(|m| m.get(profile).map(|at| at.elapsed() >= interval)).unwrap_or(true)
    }

    pub fn checked(&self, profile: &str) {
        if let Ok(mut map) = self.checked.lock() {
            map.insert(profile.to_string(), Instant::now());
        }
    }

    pub fn forget(&self, profile: &str) {
        if let Ok(mut map) = self.checked.lock() {
            map.remove(profile);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn remembers_templates_verdicts_and_checks() {
        let c = SchemaCache::default();
        assert!(c.template("sp", "T").is_none());
        let kept = c.keep_template("sp", "T", json!({"a": 1}));
        assert_eq!(c.template("sp", "T").as_deref(), Some(&json!({"a": 1})));
        assert!(c.template("other", "T").is_none());
        let other = c.keep_template("other", "T", json!({"a": 1, "@odata.context": "servicePrincipals('other')"}));
        assert_eq!(c.templates.lock().unwrap().by_content.len(), 1, "equal defaults share one copy");
        assert!(Arc::ptr_eq(&kept, &other), "the pass gets the shared copy, not a clone");
        c.keep_parsed("[x]", &Parsed::Invalid("no".into()));
        assert_eq!(c.parsed("[x]"), Some(Parsed::Invalid("no".into())));
        assert!(c.check_due("ns/p", Duration::from_secs(60)));
        c.checked("ns/p");
        assert!(!c.check_due("ns/p", Duration::from_secs(60)));
        assert!(c.check_due("ns/p", Duration::ZERO));
        c.forget("ns/p");
        assert!(c.check_due("ns/p", Duration::from_secs(60)));
    }

    #[test]
    fn the_verdicts_stay_bounded() {
        let c = SchemaCache::default();
        for i in 0..(MAX_PARSED + 10) {
            c.keep_parsed(&format!("[a{i}]"), &Parsed::Source(json!(null)));
        }
        let n = c.parsed.lock().map(|m| m.len()).unwrap_or(0);
        assert!(n <= MAX_PARSED, "{n}");
        assert!(c.parsed(&format!("[a{}]", MAX_PARSED + 9)).is_some(), "the newest is kept");
    }
}
