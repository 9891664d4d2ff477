//! The provisioning job's synchronization schema as the profile wants it: a pure function of the
//! template's default schema, the job's current schema and the profile, and the comparison that
//! decides whether Graph holds it already. No I/O (configuration reference §1.1-§1.3).
//!
//! Only the parts the profile speaks for are compared and changed: the scope filters of the
//! editable rules and their object mappings' attribute mappings. Directories (which discovery
//! fills), the version and metadata are sent back as the job's current schema has them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::reason::{Problem, Reason};
use crate::api::{AttributeMapping, CloudSyncProfileSpec, CloudSyncProfileStatus, ObjectType};

/// `parseExpression`'s verdict on one expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// The `attributeMappingSource` Graph built from it.
    Source(Value),
    /// Graph's message.
    Invalid(String),
}

/// The object mappings that get `CredentialData` when password hash sync is on.
const PASSWORD_HASH_OBJECTS: [ObjectType; 2] = [ObjectType::User, ObjectType::InetOrgPerson];

/// The reset scope of the restart after a change of scope: a cleared watermark makes the next
/// cycle a full import, so objects that came into scope are picked up. Escrows and quarantine
/// state are left alone: a scope change is no reason to forget them.
pub const SCOPE_RESET: &str = "Watermark";

/// Whether the operator manages the schema at all: a profile that never said anything about it
/// leaves the configuration as the portal (or an adopted setup) made it.
pub fn managed(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus) -> bool {
    spec.scope.is_some()
        || !spec.attribute_mappings().is_empty()
        || spec.password_hash_sync()
        || status.schema_hash.is_some()
}

fn sha256(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// Of the profile settings the desired schema is computed from.
pub fn inputs_hash(spec: &CloudSyncProfileSpec) -> String {
    let mut mappings: Vec<&AttributeMapping> = spec.attribute_mappings().iter().collect();
    mappings.sort_by(|a, b| (a.object, &a.target).cmp(&(b.object, &b.target)));
    sha256(
        &json!({"scope": spec.scope, "mappings": mappings, "passwordHashSync": spec.password_hash_sync()}).to_string(),
    )
}

/// The expressions the profile uses, each once.
pub fn expressions(spec: &CloudSyncProfileSpec) -> Vec<String> {
    let mut out: Vec<String> = spec.attribute_mappings().iter().filter_map(|m| m.expression.clone()).collect();
    out.sort();
    out.dedup();
    out
}

fn editable(rule: &Value) -> bool {
    rule.get("editable").and_then(Value::as_bool) != Some(false)
}

/// The id of the rule provisionOnDemand names: the first editable rule, the one the profile's scope
/// and mappings go into (read from the job's schema, never hard-coded).
pub fn provisioning_rule_id(schema: &Value) -> Option<String> {
    let rules = rules(schema);
    rules
        .iter()
        .find(|r| editable(r))
        .or(rules.first())
        .map(|r| str_of(r, "id"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

fn rules(schema: &Value) -> &[Value] {
    schema.get("synchronizationRules").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An `attributeMappingSource` as the schema holds it, for an AD attribute.
fn attribute_source(name: &str) -> Value {
    json!({"type": "Attribute", "name": name, "expression": format!("[{name}]"), "parameters": []})
}

/// A string literal of the expression language: in double quotes, a quote or backslash escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn constant_source(value: &str) -> Value {
    json!({"type": "Constant", "name": value, "expression": quoted(value), "parameters": []})
}

fn mapping_name(m: &AttributeMapping) -> String {
    format!("{}/{}", m.object.source_object_name(), m.target)
}

/// The source a profile mapping asks for; `Err` names what is wrong with it.
fn source_of(m: &AttributeMapping, parsed: &BTreeMap<String, Parsed>) -> Result<Value, Problem> {
    if let Some(a) = &m.attribute {
        return Ok(attribute_source(a));
    }
    if let Some(c) = &m.constant {
        return Ok(constant_source(c));
    }
    let expression = m.expression.as_deref().unwrap_or_default();
    match parsed.get(expression) {
        Some(Parsed::Source(s)) => Ok(s.clone()),
        Some(Parsed::Invalid(message)) => Err(Problem::new(
            Reason::InvalidExpression,
            format!(
                "attributeMappings {}: Graph cannot parse the expression {expression:?}: {}. Nothing of the schema is written until it is fixed",
                mapping_name(m),
                message.trim().trim_end_matches('.')
            ),
        )),
        None => Err(Problem::new(
            Reason::InvalidExpression,
            format!("attributeMappings {}: the expression was not checked with Graph", mapping_name(m)),
        )),
    }
}

/// Adds or replaces the mapping of `target`, keeping what the profile does not speak for (its
/// matching priority, default value) from the mapping it replaces.
fn upsert(object_mapping: &mut Value, target: &str, source: Value, flow_type: &str, flow_behavior: Option<&str>) {
    let Some(list) = object_mapping.get_mut("attributeMappings").and_then(Value::as_array_mut) else {
        object_mapping["attributeMappings"] = json!([]);
        return upsert(object_mapping, target, source, flow_type, flow_behavior);
    };
    let existing = list.iter_mut().find(|a| str_of(a, "targetAttributeName") == target);
    match existing {
        Some(a) => {
            a["source"] = source;
            a["flowType"] = json!(flow_type);
            if let Some(b) = flow_behavior {
                a["flowBehavior"] = json!(b);
            }
        }
        None => list.push(json!({
            "targetAttributeName": target,
            "source": source,
            "defaultValue": null,
            "flowType": flow_type,
            "flowBehavior": flow_behavior.unwrap_or("FlowWhenChanged"),
            "matchingPriority": 0,
            "exportMissingReferences": false,
        })),
    }
}

fn object_mapping_mut(rule: &mut Value, object: ObjectType) -> Option<&mut Value> {
    rule.get_mut("objectMappings")?
        .as_array_mut()?
        .iter_mut()
        .find(|m| str_of(m, "sourceObjectName").eq_ignore_ascii_case(object.source_object_name()))
}

/// The profile applied to one editable rule of the template's default.
fn apply(rule: &mut Value, spec: &CloudSyncProfileSpec, parsed: &BTreeMap<String, Parsed>) -> Result<(), Problem> {
    let names = |list: Option<&Vec<crate::api::DistinguishedName>>| -> Vec<String> {
        list.map(|l| l.iter().map(|d| d.as_str().to_string()).collect()).unwrap_or_default()
    };
    let scope = spec.scope.as_ref();
    rule["containerFilter"] = json!({"includedContainers": names(scope.and_then(|s| s.organizational_units.as_ref()))});
    rule["groupFilter"] = json!({"includedGroups": names(scope.and_then(|s| s.groups.as_ref()))});
    if spec.password_hash_sync() {
        for object in PASSWORD_HASH_OBJECTS {
            if let Some(m) = object_mapping_mut(rule, object) {
                upsert(m, "CredentialData", attribute_source("PasswordHash"), "Always", Some("FlowWhenChanged"));
            }
        }
    }
    for m in spec.attribute_mappings() {
        let source = source_of(m, parsed)?;
        let Some(om) = object_mapping_mut(rule, m.object) else {
            return Err(Problem::new(
                Reason::InvalidExpression,
                format!(
                    "attributeMappings {}: the template's schema has no object mapping for {}",
                    mapping_name(m),
                    m.object.source_object_name()
                ),
            ));
        };
        upsert(om, &m.target, source, m.flow.unwrap_or_default().as_str(), None);
    }
    Ok(())
}

/// Whether the rules come from the template's default plus the profile: once the profile has
/// set a scope or attribute mappings (now, or on an earlier pass). Until then the profile speaks
/// only for password hash sync's CredentialData, and everything else of the job's schema, such as
/// a scope picked in the portal of an adopted configuration, stays as it is.
pub fn from_template(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus) -> bool {
    spec.scope.is_some() || !spec.attribute_mappings().is_empty() || status.schema_from_template == Some(true)
}

/// The job's schema as it is, with CredentialData added to (or, without password hash sync,
/// removed from) the user and inetOrgPerson mappings of its first editable rule.
fn credential_data_only(schema: &mut Value, password_hash_sync: bool) {
    let Some(rule) = schema
        .get_mut("synchronizationRules")
        .and_then(Value::as_array_mut)
        .and_then(|r| r.iter_mut().find(|r| editable(r)))
    else {
        return;
    };
    for object in PASSWORD_HASH_OBJECTS {
        let Some(m) = object_mapping_mut(rule, object) else { continue };
        if password_hash_sync {
            upsert(m, "CredentialData", attribute_source("PasswordHash"), "Always", Some("FlowWhenChanged"));
        } else if let Some(list) = m.get_mut("attributeMappings").and_then(Value::as_array_mut) {
            list.retain(|a| str_of(a, "targetAttributeName") != "CredentialData");
        }
    }
}

/// Whether `desired` needs the template's default: not when only CredentialData is managed on a
/// job whose schema has an editable rule (then the job's own rules are kept, and the default is
/// one read and one parse per new profile saved).
pub fn needs_default(current: &Value, from_template: bool) -> bool {
    from_template || !rules(current).iter().any(editable)
}

/// The schema to PUT: the job's current schema with its rules replaced by the template default's,
/// the profile applied to the first editable one. Rules the service marks not editable are kept
/// as the job has them.
pub fn desired(
    default: &Value,
    current: &Value,
    spec: &CloudSyncProfileSpec,
    parsed: &BTreeMap<String, Parsed>,
    from_template: bool,
) -> Result<Value, Problem> {
    let mut out = match current {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(k, _)| !k.starts_with('@')).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        _ => json!({}),
    };
    let current_rules = rules(current);
    if !needs_default(current, from_template) {
        credential_data_only(&mut out, spec.password_hash_sync());
        return Ok(out);
    }
    let mut next: Vec<Value> = Vec::new();
    let mut applied = false;
    for rule in rules(default) {
        let id = str_of(rule, "id");
        if !editable(rule) {
            next.push(current_rules.iter().find(|r| str_of(r, "id") == id).unwrap_or(rule).clone());
            continue;
        }
        let mut rule = rule.clone();
        if !applied {
            apply(&mut rule, spec, parsed)?;
            applied = true;
        }
        next.push(rule);
    }
    // A rule the template does not have, that the service keeps to itself.
    let extra: Vec<Value> = current_rules
        .iter()
        .filter(|r| !editable(r) && !next.iter().any(|n| str_of(n, "id") == str_of(r, "id")))
        .cloned()
        .collect();
    next.extend(extra);
    if !applied && (spec.scope.is_some() || !spec.attribute_mappings().is_empty()) {
        return Err(Problem::new(
            Reason::GraphRequestRejected,
            "the template's default schema has no editable synchronization rule to put the scope and mappings in",
        ));
    }
    out["synchronizationRules"] = Value::Array(next);
    if out.get("directories").is_none() {
        out["directories"] = default.get("directories").cloned().unwrap_or_else(|| json!([]));
    }
    Ok(out)
}

/// A source without its `expression` text, which the service may write its own way: what a
/// mapping does is its type, name and parameters.
fn norm_source(v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let parameters: Vec<Value> = v
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| json!({"key": p.get("key").cloned().unwrap_or(Value::Null), "value": norm_source(p.get("value").unwrap_or(&Value::Null))}))
                .collect()
        })
        .unwrap_or_default();
    json!({"type": v.get("type").cloned().unwrap_or(Value::Null), "name": v.get("name").cloned().unwrap_or(Value::Null), "parameters": parameters})
}

fn null_if_empty(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(other) => other.clone(),
    }
}

fn sorted_strings(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> =
        v.and_then(Value::as_array).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect();
    out.sort();
    out
}

fn attribute_mappings(om: &Value) -> BTreeMap<String, Value> {
    om.get("attributeMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            let managed = json!({
                "source": norm_source(a.get("source").unwrap_or(&Value::Null)),
                "flowType": null_if_empty(a.get("flowType")),
                "flowBehavior": null_if_empty(a.get("flowBehavior")),
                "defaultValue": null_if_empty(a.get("defaultValue")),
                "matchingPriority": a.get("matchingPriority").cloned().unwrap_or(json!(0)),
            });
            (str_of(a, "targetAttributeName").to_string(), managed)
        })
        .collect()
}

/// What the operator compares: per editable rule (by id), its filters and, per object mapping
/// (by name), its attribute mappings (by target).
pub fn managed_parts(schema: &Value) -> Value {
    let mut out = Map::new();
    for rule in rules(schema).iter().filter(|r| editable(r)) {
        let mappings: Map<String, Value> = rule
            .get("objectMappings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|om| {
                let attrs: Map<String, Value> = attribute_mappings(om).into_iter().collect();
                (
                    str_of(om, "name").to_string(),
                    json!({"source": str_of(om, "sourceObjectName"), "attributeMappings": attrs}),
                )
            })
            .collect();
        out.insert(
            str_of(rule, "id").to_string(),
            json!({
                "organizationalUnits": sorted_strings(rule.pointer("/containerFilter/includedContainers")),
                "groups": sorted_strings(rule.pointer("/groupFilter/includedGroups")),
                "objectMappings": mappings,
            }),
        );
    }
    Value::Object(out)
}

pub fn hash(schema: &Value) -> String {
    sha256(&canonical(&managed_parts(schema)))
}

/// JSON with object keys sorted, whatever order the map keeps. Its text is what status records
/// the hash of, so it must not change; it is written into one buffer because the planner hashes
/// a schema on most rounds of a pass (a fifth of the operator's CPU when it built a string per
/// node).
fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_json_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// A string as serde_json writes it (the same escapes).
fn write_json_string(s: &str, out: &mut String) {
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("\"\""),
    }
}

/// The scope filters of the editable rules.
pub fn scope_of(schema: &Value) -> Vec<(Vec<String>, Vec<String>)> {
    rules(schema)
        .iter()
        .filter(|r| editable(r))
        .map(|r| {
            (
                sorted_strings(r.pointer("/containerFilter/includedContainers")),
                sorted_strings(r.pointer("/groupFilter/includedGroups")),
            )
        })
        .collect()
}

/// At most this many differences are named in an Event.
const MAX_DIFFERENCES: usize = 8;

/// What differs between Graph's schema and the desired one, in words, for an Event.
pub fn differences(current: &Value, desired: &Value) -> Vec<String> {
    let (now, want) = (managed_parts(current), managed_parts(desired));
    let empty = Map::new();
    let (now, want) = (now.as_object().unwrap_or(&empty), want.as_object().unwrap_or(&empty));
    let mut out = Vec::new();
    for (id, w) in want {
        let Some(n) = now.get(id) else {
            out.push(format!("rule {id} is missing"));
            continue;
        };
        for (field, label) in [("organizationalUnits", "scope OUs"), ("groups", "scope groups")] {
            if n[field] != w[field] {
                out.push(format!("{label} {} instead of {}", n[field], w[field]));
            }
        }
        let (nm, wm) =
            (n["objectMappings"].as_object().unwrap_or(&empty), w["objectMappings"].as_object().unwrap_or(&empty));
        for (name, wo) in wm {
            let object = wo["source"].as_str().unwrap_or(name);
            let (na, wa) = (
                nm.get(name).and_then(|o| o["attributeMappings"].as_object()).unwrap_or(&empty),
                wo["attributeMappings"].as_object().unwrap_or(&empty),
            );
            for (target, want) in wa {
                match na.get(target) {
                    None => out.push(format!("{object}/{target} was removed")),
                    Some(have) if have != want => out.push(format!("{object}/{target} was changed")),
                    _ => {}
                }
            }
            out.extend(na.keys().filter(|t| !wa.contains_key(*t)).map(|t| format!("{object}/{t} was added")));
        }
    }
    if out.len() > MAX_DIFFERENCES {
        let more = out.len() - MAX_DIFFERENCES;
        out.truncate(MAX_DIFFERENCES);
        out.push(format!("{more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DistinguishedName, Flow, Scope};

    fn mapping(target: &str, source: Value) -> Value {
        json!({"targetAttributeName": target, "source": source, "defaultValue": null, "flowType": "Always",
               "flowBehavior": "FlowWhenChanged", "matchingPriority": 0, "exportMissingReferences": false})
    }

    fn default_schema() -> Value {
        let om = |name: &str, object: &str| {
            json!({"name": name, "sourceObjectName": object, "targetObjectName": "User", "enabled": true,
                   "attributeMappings": [mapping("displayName", attribute_source("displayName")),
                                         mapping("department", attribute_source("department"))]})
        };
        json!({
            "id": "AD2AADProvisioning", "version": "v1",
            "directories": [{"name": "Active Directory", "objects": []}],
            "synchronizationRules": [
                {"id": "r1", "editable": true, "containerFilter": {"includedContainers": []},
                 "groupFilter": {"includedGroups": []},
                 "objectMappings": [om("users", "user"), om("inetOrgPersons", "inetOrgPerson"), om("groups", "group")]},
                {"id": "hidden", "editable": false, "objectMappings": []}
            ]
        })
    }

    fn spec() -> CloudSyncProfileSpec {
        let mut s = crate::reconcile::rules::spec();
        s.password_hash_sync = Some(false);
        s
    }

    fn m(object: ObjectType, target: &str) -> AttributeMapping {
        AttributeMapping {
            object,
            target: target.into(),
            attribute: None,
            constant: None,
            expression: None,
            flow: None,
        }
    }

    fn rule(schema: &Value) -> &Value {
        &schema["synchronizationRules"][0]
    }

    fn targets(schema: &Value, om: usize) -> Vec<String> {
        rule(schema)["objectMappings"][om]["attributeMappings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["targetAttributeName"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn scope_mappings_and_credential_data_go_where_the_service_reads_them() {
        let mut s = spec();
        s.scope = Some(Scope {
            organizational_units: Some(vec![DistinguishedName("OU=Sales,DC=contoso,DC=com".into())]),
            groups: None,
        });
        let mut dept = m(ObjectType::User, "department");
        dept.expression = Some("Join(\" \", [givenName], [sn])".into());
        let mut usage = m(ObjectType::User, "usageLocation");
        usage.constant = Some("D\"E".into());
        usage.flow = Some(Flow::ObjectAddOnly);
        s.attribute_mappings = Some(vec![dept, usage]);
        s.password_hash_sync = Some(true);
        let tree = json!({"type": "Function", "name": "Join", "expression": "x", "parameters": []});
        let parsed = BTreeMap::from([("Join(\" \", [givenName], [sn])".to_string(), Parsed::Source(tree.clone()))]);
        let current = json!({"@odata.context": "x", "id": "AD2AADProvisioning", "version": "v7",
                             "directories": [{"name": "discovered"}], "synchronizationRules": []});
        let d = desired(&default_schema(), &current, &s, &parsed, true).unwrap();
        assert_eq!(rule(&d)["containerFilter"], json!({"includedContainers": ["OU=Sales,DC=contoso,DC=com"]}));
        assert_eq!(rule(&d)["groupFilter"], json!({"includedGroups": []}));
        let users = &rule(&d)["objectMappings"][0]["attributeMappings"];
        assert_eq!(users[1]["source"], tree, "the parsed tree is the source");
        let usage = users.as_array().unwrap().iter().find(|a| a["targetAttributeName"] == "usageLocation").unwrap();
        assert_eq!(usage["source"]["expression"], "\"D\\\"E\"");
        assert_eq!(usage["flowType"], "ObjectAddOnly");
        assert!(targets(&d, 0).contains(&"CredentialData".to_string()));
        assert!(targets(&d, 1).contains(&"CredentialData".to_string()), "inetOrgPerson too");
        assert!(!targets(&d, 2).contains(&"CredentialData".to_string()), "not on groups");
        // The job's own parts stay; the non-editable rule is kept; no OData annotations go back.
        assert_eq!((d["version"].as_str(), d["directories"][0]["name"].as_str()), (Some("v7"), Some("discovered")));
        assert_eq!(d["synchronizationRules"][1]["id"], "hidden");
        assert!(d.get("@odata.context").is_none());
    }

    #[test]
    fn what_the_profile_no_longer_says_returns_to_the_default() {
        let mut s = spec();
        let mut extra = m(ObjectType::Group, "extensionAttribute1");
        extra.attribute = Some("info".into());
        s.attribute_mappings = Some(vec![extra]);
        let customised = desired(&default_schema(), &json!({}), &s, &BTreeMap::new(), true).unwrap();
        assert_ne!(hash(&customised), hash(&default_schema()));
        let back = desired(&default_schema(), &customised, &spec(), &BTreeMap::new(), true).unwrap();
        assert_eq!(hash(&back), hash(&default_schema()));
        assert_eq!(differences(&customised, &back), ["group/extensionAttribute1 was added"]);
    }

    #[test]
    fn an_invalid_expression_names_the_mapping_and_grahs_message() {
        let mut s = spec();
        let mut bad = m(ObjectType::User, "department");
        bad.expression = Some("Join(".into());
        s.attribute_mappings = Some(vec![bad]);
        let parsed = BTreeMap::from([("Join(".to_string(), Parsed::Invalid("Unexpected end of expression.".into()))]);
        let p = desired(&default_schema(), &json!({}), &s, &parsed, true).unwrap_err();
        assert_eq!(p.reason, Reason::InvalidExpression);
        assert!(p.message.starts_with("attributeMappings user/department:"), "{}", p.message);
        assert!(p.message.contains("Unexpected end of expression"), "{}", p.message);
    }

    #[test]
    fn the_comparison_ignores_order_expression_text_and_annotations() {
        let a = default_schema();
        let mut b = a.clone();
        let list = b["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"].as_array_mut().unwrap();
        list.reverse();
        list[0]["source"]["expression"] = json!("[department] ");
        b["version"] = json!("v2");
        b["@odata.context"] = json!("ctx");
        assert_eq!(hash(&a), hash(&b));
        b["synchronizationRules"][0]["containerFilter"]["includedContainers"] = json!(["OU=A,DC=x,DC=y"]);
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(scope_of(&a), scope_of(&b));
        assert_eq!(differences(&b, &a), [r#"scope OUs ["OU=A,DC=x,DC=y"] instead of []"#]);
    }

    #[test]
    fn password_hash_sync_alone_adds_credential_data_and_keeps_a_portal_scope() {
        let mut portal = default_schema();
        portal["synchronizationRules"][0]["containerFilter"]["includedContainers"] = json!(["OU=Portal,DC=x,DC=y"]);
        let mut s = spec();
        s.password_hash_sync = Some(true);
        let status = CloudSyncProfileStatus::default();
        assert!(!from_template(&s, &status));
        let d = desired(&default_schema(), &portal, &s, &BTreeMap::new(), false).unwrap();
        assert_eq!(rule(&d)["containerFilter"]["includedContainers"], json!(["OU=Portal,DC=x,DC=y"]));
        assert!(targets(&d, 0).contains(&"CredentialData".to_string()));
        assert!(targets(&d, 1).contains(&"CredentialData".to_string()));
        s.password_hash_sync = Some(false);
        let off = desired(&default_schema(), &d, &s, &BTreeMap::new(), false).unwrap();
        assert_eq!(hash(&off), hash(&portal), "turned off: only CredentialData goes");
        let owned = CloudSyncProfileStatus { schema_from_template: Some(true), ..Default::default() };
        assert!(from_template(&s, &owned), "once the profile owned the rule, it keeps owning it");
    }

    #[test]
    fn the_inputs_hash_follows_the_profile_not_the_order_of_its_list() {
        let mut a = spec();
        let (mut x, mut y) = (m(ObjectType::User, "a"), m(ObjectType::User, "b"));
        x.attribute = Some("p".into());
        y.attribute = Some("q".into());
        a.attribute_mappings = Some(vec![x.clone(), y.clone()]);
        let mut b = spec();
        b.attribute_mappings = Some(vec![y, x]);
        assert_eq!(inputs_hash(&a), inputs_hash(&b));
        b.password_hash_sync = Some(true);
        assert_ne!(inputs_hash(&a), inputs_hash(&b));
        assert!(!managed(&spec(), &CloudSyncProfileStatus::default()));
        assert!(managed(&a, &CloudSyncProfileStatus::default()));
        let was = CloudSyncProfileStatus { schema_hash: Some("sha256:x".into()), ..Default::default() };
        assert!(managed(&spec(), &was), "once managed, removing the settings returns it to the default");
    }

    /// The canonical text as it was first built (a string per node): recorded hashes depend on
    /// it, so the one-buffer version must write exactly this.
    fn canonical_by_parts(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canonical_by_parts(v))).collect();
                let body: Vec<String> =
                    sorted.iter().map(|(k, v)| format!("{}:{v}", Value::String((*k).clone()))).collect();
                format!("{{{}}}", body.join(","))
            }
            Value::Array(a) => format!("[{}]", a.iter().map(canonical_by_parts).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_canonical_text_and_so_every_recorded_hash_stay_the_same() {
        let odd = json!({"z": [1, 2.5, null, true, {"b\"q": "line\nbreak \u{1} é ✓", "a": []}], "A": {}, "": "x\\y"});
        for v in [default_schema(), managed_parts(&default_schema()), odd, json!([]), json!("s"), json!(-0.0)] {
            assert_eq!(canonical(&v), canonical_by_parts(&v), "{v}");
        }
    }
}
