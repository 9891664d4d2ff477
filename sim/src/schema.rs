//! The `synchronizationSchema` of the cloud-sync job templates (reference part 2 §1.1, §1.2):
//! realistic defaults built from expression strings (so every default source is a tree the
//! `parseExpression` parser produced), and the shape check a schema `PUT` must pass.

use serde_json::{Map, Value, json};

use super::expression;
use super::ids;

pub const AD: &str = "Active Directory";
pub const AAD: &str = "Azure Active Directory";

/// One attribute mapping of a default: target attribute, source expression, flow type,
/// matching priority (0 = not a matching attribute).
type Row = (&'static str, &'static str, &'static str, i64);

struct ObjectMapping {
    name: &'static str,
    source: &'static str,
    target: &'static str,
    rows: &'static [Row],
}

const USER_ROWS: &[Row] = &[
    ("onPremisesImmutableId", "ConvertToBase64([objectGUID])", "Always", 1),
    ("accountEnabled", "Not(IsPresent([accountDisabled]))", "Always", 0),
    ("displayName", "[displayName]", "Always", 0),
    ("givenName", "[givenName]", "Always", 0),
    ("surname", "[sn]", "Always", 0),
    ("mail", "[mail]", "Always", 0),
    ("mailNickname", "Coalesce([mailNickname], [sAMAccountName])", "Always", 0),
    ("userPrincipalName", "[userPrincipalName]", "Always", 0),
    ("department", "[department]", "Always", 0),
    ("jobTitle", "[title]", "Always", 0),
    ("onPremisesSamAccountName", "[sAMAccountName]", "Always", 0),
    ("onPremisesDistinguishedName", "[distinguishedName]", "Always", 0),
    ("usageLocation", "\"US\"", "ObjectAddOnly", 0),
];

const GROUP_ROWS: &[Row] = &[
    ("onPremisesImmutableId", "ConvertToBase64([objectGUID])", "Always", 1),
    ("displayName", "[displayName]", "Always", 0),
    ("description", "[description]", "Always", 0),
    ("mailNickname", "Coalesce([mailNickname], [sAMAccountName])", "Always", 0),
    ("securityEnabled", "IIF(IsPresent([groupType]), \"True\", \"False\")", "Always", 0),
    ("members", "[member]", "Always", 0),
];

const CONTACT_ROWS: &[Row] = &[
    ("onPremisesImmutableId", "ConvertToBase64([objectGUID])", "Always", 1),
    ("displayName", "[displayName]", "Always", 0),
    ("givenName", "[givenName]", "Always", 0),
    ("surname", "[sn]", "Always", 0),
    ("mail", "[mail]", "Always", 0),
    ("mailNickname", "Join(\"\", \"contact_\", StripSpaces([cn]))", "Always", 0),
];

const PROVISIONING: &[ObjectMapping] = &[
    ObjectMapping { name: "Provision Active Directory users", source: "user", target: "User", rows: USER_ROWS },
    ObjectMapping {
        name: "Provision Active Directory inetOrgPersons",
        source: "inetOrgPerson",
        target: "User",
        rows: USER_ROWS,
    },
    ObjectMapping { name: "Provision Active Directory groups", source: "group", target: "Group", rows: GROUP_ROWS },
    ObjectMapping {
        name: "Provision Active Directory contacts",
        source: "contact",
        target: "Contact",
        rows: CONTACT_ROWS,
    },
];

const HASH_ROWS: &[Row] = &[
    ("onPremisesImmutableId", "ConvertToBase64([objectGUID])", "Always", 1),
    ("CredentialData", "[PasswordHash]", "Always", 0),
];

const PASSWORD_HASH: &[ObjectMapping] = &[
    ObjectMapping {
        name: "Synchronize Active Directory user passwords",
        source: "user",
        target: "User",
        rows: HASH_ROWS,
    },
    ObjectMapping {
        name: "Synchronize Active Directory inetOrgPerson passwords",
        source: "inetOrgPerson",
        target: "User",
        rows: HASH_ROWS,
    },
];

/// The fixed, hidden mappings of Entra→AD group provisioning (reference part 2 §1.2).
const GROUP_WRITEBACK_ROWS: &[Row] = &[
    ("msDS-ExternalDirectoryObjectId", "Append(\"Group_\", [objectId])", "Always", 1),
    ("adminDescription", "Append(\"Group_\", [objectId])", "ObjectAddOnly", 0),
    ("cn", "Append(Left([displayName], 50), [objectId])", "ObjectAddOnly", 0),
    ("displayName", "[displayName]", "Always", 0),
    ("isSecurityGroup", "\"True\"", "Always", 0),
    ("UniversalScope", "\"True\"", "Always", 0),
    ("member", "[members]", "Always", 0),
    ("parentDistinguishedName", "\"OU=Users,DC=contoso,DC=com\"", "ObjectAddOnly", 0),
];

const GROUP_PROVISIONING: &[ObjectMapping] = &[ObjectMapping {
    name: "Provision Microsoft Entra ID Groups",
    source: "Group",
    target: "group",
    rows: GROUP_WRITEBACK_ROWS,
}];

const EXCHANGE_ROWS: &[Row] = &[
    ("msExchArchiveStatus", "[archiveStatus]", "Always", 0),
    ("msExchUserHoldPolicies", "[userHoldPolicies]", "Always", 0),
    ("proxyAddresses", "[cloudProxyAddresses]", "MultiValueAddOnly", 0),
    ("mailNickName", "[mailNickname]", "Always", 0),
];

const EXCHANGE: &[ObjectMapping] = &[ObjectMapping {
    name: "Exchange hybrid writeback of users",
    source: "User",
    target: "user",
    rows: EXCHANGE_ROWS,
}];

const DEVICE_ROWS: &[Row] = &[
    ("deviceId", "[objectGUID]", "Always", 1),
    ("displayName", "[cn]", "Always", 0),
    ("operatingSystem", "[operatingSystem]", "Always", 0),
    ("operatingSystemVersion", "[operatingSystemVersion]", "Always", 0),
];

const DEVICES: &[ObjectMapping] = &[ObjectMapping {
    name: "Provision Active Directory computers",
    source: "computer",
    target: "Device",
    rows: DEVICE_ROWS,
}];

fn template_parts(template: &str) -> (&'static str, &'static str, &'static [ObjectMapping]) {
    match template {
        "AD2AADPasswordHash" => (AD, AAD, PASSWORD_HASH),
        "AAD2ADGroupProvisioning" => (AAD, AD, GROUP_PROVISIONING),
        "AAD2ADExchangeHybridWriteback" => (AAD, AD, EXCHANGE),
        "AD2AADDeviceSync" => (AD, AAD, DEVICES),
        _ => (AD, AAD, PROVISIONING),
    }
}

/// Source attribute names referenced by an `attributeMappingSource` tree.
fn referenced_attributes(source: &Value, out: &mut Vec<String>) {
    if source["type"] == "Attribute"
        && let Some(n) = source["name"].as_str()
    {
        out.push(n.to_owned());
    }
    for p in source["parameters"].as_array().into_iter().flatten() {
        referenced_attributes(&p["value"], out);
    }
}

fn attribute_definition(name: &str, anchor: bool) -> Value {
    let multivalued = matches!(name, "member" | "members" | "proxyAddresses" | "cloudProxyAddresses");
    let kind = match name {
        "member" | "members" => "Reference",
        "objectGUID" => "Binary",
        "accountEnabled" | "securityEnabled" | "accountDisabled" => "Boolean",
        _ => "String",
    };
    json!({
        "name": name, "type": kind, "multivalued": multivalued, "anchor": anchor,
        "caseExact": false, "required": anchor, "mutability": "ReadWrite", "flowNullValues": false,
        "apiExpressions": [], "metadata": [], "referencedObjects": [],
    })
}

fn directory(name: &str, objects: Vec<(String, Vec<String>)>) -> Value {
    let objects: Vec<Value> = objects
        .into_iter()
        .map(|(object, mut attrs)| {
            attrs.sort();
            attrs.dedup();
            let attributes: Vec<Value> =
                attrs.iter().map(|a| attribute_definition(a, a == "objectGUID" || a == "objectId")).collect();
            json!({"name": object, "attributes": attributes, "metadata": [], "supportedApis": []})
        })
        .collect();
    json!({
        "id": name.replace(' ', ""),
        "name": name,
        "discoverabilities": "AttributeNames, AttributeDataTypes",
        "discoveryDateTime": null,
        "readOnly": false,
        "version": null,
        "objects": objects,
    })
}

/// The default schema of `template`, as `GET .../schema` returns it before any PUT.
pub fn default_schema(template: &str) -> Value {
    let (source_dir, target_dir, mappings) = template_parts(template);
    let mut source_objects: Vec<(String, Vec<String>)> = Vec::new();
    let mut target_objects: Vec<(String, Vec<String>)> = Vec::new();
    let object_mappings: Vec<Value> = mappings
        .iter()
        .map(|m| {
            let mut src_attrs = Vec::new();
            let attribute_mappings: Vec<Value> = m
                .rows
                .iter()
                .map(|(target, expr, flow, matching)| {
                    let source = expression::parse(expr).map(|e| e.to_source()).unwrap_or(Value::Null);
                    referenced_attributes(&source, &mut src_attrs);
                    json!({
                        "targetAttributeName": target,
                        "source": source,
                        "defaultValue": null,
                        "flowType": flow,
                        "flowBehavior": "FlowWhenChanged",
                        "matchingPriority": matching,
                        "exportMissingReferences": false,
                    })
                })
                .collect();
            push_object(&mut source_objects, m.source, src_attrs);
            push_object(&mut target_objects, m.target, m.rows.iter().map(|r| r.0.to_owned()).collect());
            json!({
                "name": m.name,
                "enabled": true,
                "flowTypes": "Add, Update, Delete",
                "sourceObjectName": m.source,
                "targetObjectName": m.target,
                "scope": null,
                "metadata": [],
                "attributeMappings": attribute_mappings,
            })
        })
        .collect();
    json!({
        "id": template,
        "version": "Date:2026-11-01T00:00:00Z;NewtonsoftVersion:1;Version:1",
        "directories": [directory(source_dir, source_objects), directory(target_dir, target_objects)],
        "synchronizationRules": [{
            // Stable per template, so clients must read it from the schema (never hard-code it).
            "id": ids::stable_guid(&["synchronizationRule", template]),
            "name": format!("{template} rule"),
            "editable": true,
            "priority": 1,
            "sourceDirectoryName": source_dir,
            "targetDirectoryName": target_dir,
            "containerFilter": {"includedContainers": []},
            "groupFilter": {"includedGroups": []},
            "metadata": [{"key": "defaultSourceObjectMappings", "value": mappings.len().to_string()}],
            "objectMappings": object_mappings,
        }],
        "metadata": [],
    })
}

fn push_object(objects: &mut Vec<(String, Vec<String>)>, name: &str, attrs: Vec<String>) {
    match objects.iter_mut().find(|(n, _)| n == name) {
        Some((_, existing)) => existing.extend(attrs),
        None => objects.push((name.to_owned(), attrs)),
    }
}

const FLOW_TYPES: &[&str] = &["Always", "ObjectAddOnly", "MultiValueAddOnly", "ValueAddOnly", "AttributeAddOnly"];
const FLOW_BEHAVIORS: &[&str] = &["FlowWhenChanged", "FlowAlways"];
const SOURCE_TYPES: &[&str] = &["Attribute", "Constant", "Function"];

fn array<'a>(obj: &'a Map<String, Value>, field: &str, at: &str, required: bool) -> Result<&'a [Value], String> {
    match obj.get(field) {
        Some(Value::Array(a)) => Ok(a),
        None | Some(Value::Null) if !required => Ok(&[]),
        _ => Err(format!("{at}.{field} must be an array.")),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{at} must be an object."))
}

fn string_list(obj: &Map<String, Value>, field: &str, at: &str) -> Result<(), String> {
    if array(obj, field, at, true)?.iter().all(Value::is_string) {
        Ok(())
    } else {
        Err(format!("{at}.{field} must be an array of strings."))
    }
}

fn check_enum(obj: &Map<String, Value>, field: &str, values: &[&str], at: &str) -> Result<(), String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if values.contains(&s.as_str()) => Ok(()),
        Some(other) => Err(format!("{at}.{field}: '{other}' is not one of {}.", values.join(", "))),
    }
}

/// An `attributeMappingSource`, recursively.
fn check_source(v: &Value, at: &str) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let s = object(v, at)?;
    match s.get("type") {
        Some(Value::String(t)) if SOURCE_TYPES.contains(&t.as_str()) => {}
        _ => return Err(format!("{at}.type must be one of {}.", SOURCE_TYPES.join(", "))),
    }
    if s.get("type").and_then(Value::as_str) == Some("Function") {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if expression::Function::lookup(name).is_none() {
            return Err(format!("{at}.name: '{name}' is not a known function."));
        }
    }
    for (i, p) in array(s, "parameters", at, false)?.iter().enumerate() {
        let pat = format!("{at}.parameters[{i}]");
        let p = object(p, &pat)?;
        if !p.get("key").is_some_and(Value::is_string) {
            return Err(format!("{pat}.key must be a string."));
        }
        check_source(p.get("value").unwrap_or(&Value::Null), &format!("{pat}.value"))?;
    }
    Ok(())
}

/// A scoping filter: sets of filter groups (ORed), each a list of clauses (ANDed).
fn check_scope(scope: &Value, at: &str) -> Result<(), String> {
    let scope = object(scope, at)?;
    let operators = filter_operators();
    for field in ["groups", "inputFilterGroups", "categoryFilterGroups"] {
        for (i, g) in array(scope, field, at, false)?.iter().enumerate() {
            let gat = format!("{at}.{field}[{i}]");
            for (j, c) in array(object(g, &gat)?, "clauses", &gat, true)?.iter().enumerate() {
                let cat = format!("{gat}.clauses[{j}]");
                let c = object(c, &cat)?;
                let op = c.get("operatorName").and_then(Value::as_str).unwrap_or("");
                let Some(def) = operators.iter().find(|o| o["name"] == op) else {
                    return Err(format!("{cat}.operatorName: '{op}' is not a filter operator."));
                };
                if !c.get("sourceOperandName").is_some_and(Value::is_string) {
                    return Err(format!("{cat}.sourceOperandName must be a string."));
                }
                if def["arity"] == "Binary" {
                    let target = c.get("targetOperand").map(|t| object(t, &format!("{cat}.targetOperand")));
                    match target {
                        Some(Ok(t)) => string_list(t, "values", &format!("{cat}.targetOperand"))?,
                        Some(Err(e)) => return Err(e),
                        None => return Err(format!("{cat}.targetOperand is required by {op}.")),
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_object_mapping(v: &Value, at: &str) -> Result<(), String> {
    let m = object(v, at)?;
    for field in ["name", "sourceObjectName", "targetObjectName"] {
        if !m.get(field).is_some_and(Value::is_string) {
            return Err(format!("{at}.{field} must be a string."));
        }
    }
    if let Some(scope) = m.get("scope").filter(|s| !s.is_null()) {
        check_scope(scope, &format!("{at}.scope"))?;
    }
    for (i, a) in array(m, "attributeMappings", at, false)?.iter().enumerate() {
        let aat = format!("{at}.attributeMappings[{i}]");
        let a = object(a, &aat)?;
        if a.get("targetAttributeName").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("{aat}.targetAttributeName must be a non-empty string."));
        }
        check_enum(a, "flowType", FLOW_TYPES, &aat)?;
        check_enum(a, "flowBehavior", FLOW_BEHAVIORS, &aat)?;
        check_source(a.get("source").unwrap_or(&Value::Null), &format!("{aat}.source"))?;
    }
    Ok(())
}

/// Checks that a PUT body is a `synchronizationSchema`; the message names the first bad field.
pub fn validate(body: &Map<String, Value>) -> Result<(), String> {
    let at = "synchronizationSchema";
    for (i, d) in array(body, "directories", at, true)?.iter().enumerate() {
        let dat = format!("{at}.directories[{i}]");
        if !object(d, &dat)?.get("name").is_some_and(Value::is_string) {
            return Err(format!("{dat}.name must be a string."));
        }
    }
    for (i, r) in array(body, "synchronizationRules", at, true)?.iter().enumerate() {
        let rat = format!("{at}.synchronizationRules[{i}]");
        let rule = object(r, &rat)?;
        if !rule.get("id").is_some_and(Value::is_string) {
            return Err(format!("{rat}.id must be a string."));
        }
        if let Some(c) = rule.get("containerFilter").filter(|c| !c.is_null()) {
            string_list(
                object(c, &format!("{rat}.containerFilter"))?,
                "includedContainers",
                &format!("{rat}.containerFilter"),
            )?;
        }
        if let Some(g) = rule.get("groupFilter").filter(|g| !g.is_null()) {
            string_list(object(g, &format!("{rat}.groupFilter"))?, "includedGroups", &format!("{rat}.groupFilter"))?;
        }
        for (j, m) in array(rule, "objectMappings", &rat, false)?.iter().enumerate() {
            check_object_mapping(m, &format!("{rat}.objectMappings[{j}]"))?;
        }
    }
    Ok(())
}

/// The scoping-filter operators `filterOperators` lists (`filterOperatorSchema`). The names are
/// the wire spellings of the documented operators; [UNCONFIRMED] the exact set a live tenant
/// returns.
pub fn filter_operators() -> Vec<Value> {
    const STRINGY: &[&str] = &["String", "Reference"];
    let ops: &[(&str, &str, &[&str])] = &[
        ("EQUALS", "Binary", &["String", "Integer", "Reference", "Boolean", "Binary"]),
        ("NOT_EQUALS", "Binary", &["String", "Integer", "Reference", "Boolean", "Binary"]),
        ("IS_TRUE", "Unary", &["Boolean"]),
        ("IS_FALSE", "Unary", &["Boolean"]),
        ("IS_NULL", "Unary", &["String", "Integer", "Reference", "Boolean", "Binary"]),
        ("IS_NOT_NULL", "Unary", &["String", "Integer", "Reference", "Boolean", "Binary"]),
        ("REGEX_MATCH", "Binary", STRINGY),
        ("NOT_REGEX_MATCH", "Binary", STRINGY),
        ("GREATER_THAN", "Binary", &["Integer"]),
        ("GREATER_THAN_OR_EQUALS", "Binary", &["Integer"]),
        ("ENDS_WITH", "Binary", STRINGY),
        ("INCLUDES", "Binary", STRINGY),
        ("IS_MEMBER_OF", "Binary", &["Reference"]),
        ("PRESENT", "Unary", &["String", "Integer", "Reference", "Boolean", "Binary"]),
    ];
    ops.iter()
        .map(|(name, arity, types)| {
            json!({"name": name, "arity": arity, "multivaluedComparisonType": "Any", "supportedAttributeTypes": types})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_default_shape() {
        let s = default_schema("AD2AADProvisioning");
        let rule = &s["synchronizationRules"][0];
        assert_eq!(rule["containerFilter"], json!({"includedContainers": []}));
        assert_eq!(rule["groupFilter"], json!({"includedGroups": []}));
        let objects: Vec<&str> = rule["objectMappings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["sourceObjectName"].as_str().unwrap())
            .collect();
        assert_eq!(objects, ["user", "inetOrgPerson", "group", "contact"]);
        let user = &rule["objectMappings"][0]["attributeMappings"];
        let dept = user.as_array().unwrap().iter().find(|m| m["targetAttributeName"] == "department").unwrap();
        assert_eq!(
            dept["source"],
            json!({"type": "Attribute", "name": "department", "expression": "[department]", "parameters": []})
        );
        // Every default source parsed; none fell back to null.
        for t in [
            "AD2AADProvisioning",
            "AD2AADPasswordHash",
            "AAD2ADGroupProvisioning",
            "AAD2ADExchangeHybridWriteback",
            "AD2AADDeviceSync",
        ] {
            let s = default_schema(t);
            for m in s["synchronizationRules"][0]["objectMappings"].as_array().unwrap() {
                for a in m["attributeMappings"].as_array().unwrap() {
                    assert!(a["source"].is_object(), "{t}: {a}");
                }
            }
            validate(s.as_object().unwrap()).unwrap();
        }
        let ad = &s["directories"][0];
        assert_eq!(ad["name"], AD);
        assert!(ad["objects"][0]["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "objectGUID"));
    }

    fn invalid(v: Value) -> String {
        validate(v.as_object().unwrap()).unwrap_err()
    }

    #[test]
    fn validation_names_the_field() {
        assert!(invalid(json!({})).contains("directories"));
        assert!(invalid(json!({"directories": [], "synchronizationRules": {}})).contains("synchronizationRules"));
        let mut s = default_schema("AD2AADProvisioning");
        s["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][2]["flowType"] = json!("Sometimes");
        assert!(invalid(s.clone()).contains("objectMappings[0].attributeMappings[2].flowType"));
        let mut s = default_schema("AD2AADProvisioning");
        s["synchronizationRules"][0]["containerFilter"] = json!({"includedContainers": "OU=Sales,DC=contoso,DC=com"});
        assert!(invalid(s).contains("containerFilter.includedContainers"));
        let mut s = default_schema("AD2AADProvisioning");
        s["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][1]["source"] =
            json!({"type": "Function", "name": "Frob", "parameters": []});
        assert!(invalid(s).contains("not a known function"));
        let mut s = default_schema("AD2AADProvisioning");
        s["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][1]["source"] =
            json!({"type": "Expression"});
        assert!(invalid(s).contains("source.type"));
        assert!(validate(json!({"directories": [], "synchronizationRules": []}).as_object().unwrap()).is_ok());
        // Scoping filters: the reference's shape passes; a bad operator or a missing operand does not.
        let clause = json!({"operatorName": "EQUALS", "sourceOperandName": "department", "targetOperand": {"values": ["Sales"]}});
        let mut s = default_schema("AD2AADProvisioning");
        s["synchronizationRules"][0]["objectMappings"][0]["scope"] = json!({"groups": [{"name": "f1", "clauses": [clause]}], "inputFilterGroups": [], "categoryFilterGroups": []});
        validate(s.as_object().unwrap()).unwrap();
        s["synchronizationRules"][0]["objectMappings"][0]["scope"]["groups"][0]["clauses"][0]["operatorName"] =
            json!("LIKE");
        assert!(invalid(s.clone()).contains("scope.groups[0].clauses[0].operatorName"));
        s["synchronizationRules"][0]["objectMappings"][0]["scope"]["groups"][0]["clauses"][0] =
            json!({"operatorName": "IS_TRUE", "sourceOperandName": "isCritical"});
        validate(s.as_object().unwrap()).unwrap();
        s["synchronizationRules"][0]["objectMappings"][0]["scope"]["groups"][0]["clauses"][0]["operatorName"] =
            json!("EQUALS");
        assert!(invalid(s).contains("targetOperand is required"));
    }
}
