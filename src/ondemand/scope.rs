//! Whether a subject lies inside a profile's scope. On-demand provisioning ignores scoping
//! filters (reference, cloud sync configuration §3), so a subject outside the scope is provisioned
//! anyway; the request warns instead of refusing, because testing an object before moving it into
//! scope is a legitimate use.

use crate::api::Scope;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Inside,
    Outside,
    /// Group scope: membership is known only to Active Directory.
    Unknown,
}

/// The DN's relative names, normalised for comparison: split on unescaped commas, trimmed,
/// attribute types and values compared case-insensitively (AD compares DNs that way).
fn rdns(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((t, v)) => format!("{}={}", t.trim().to_lowercase(), v.trim().to_lowercase()),
            None => p.trim().to_lowercase(),
        })
        .collect()
}

/// True when `dn` is `container` or lies below it.
pub fn is_under(dn: &str, container: &str) -> bool {
    let (d, c) = (rdns(dn), rdns(container));
    d.len() >= c.len() && d[d.len() - c.len()..] == c[..]
}

/// Where `dn` stands against the profile's scope (`None`: the whole domain).
pub fn verdict(dn: &str, scope: Option<&Scope>) -> Verdict {
    let Some(scope) = scope else { return Verdict::Inside };
    if let Some(ous) = scope.organizational_units.as_ref() {
        return if ous.iter().any(|ou| is_under(dn, ou.as_str())) { Verdict::Inside } else { Verdict::Outside };
    }
    if let Some(groups) = scope.groups.as_ref() {
        return if groups.iter().any(|g| rdns(g.as_str()) == rdns(dn)) { Verdict::Inside } else { Verdict::Unknown };
    }
    Verdict::Inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DistinguishedName;

    fn ous(list: &[&str]) -> Scope {
        Scope {
            organizational_units: Some(list.iter().map(|s| DistinguishedName(s.to_string())).collect()),
            groups: None,
        }
    }

    #[test]
    fn below_an_ou_is_inside_case_and_spaces_aside() {
        let s = ous(&["OU=Sales,DC=contoso,DC=com"]);
        assert_eq!(verdict("CN=Adele Vance,OU=Sales,DC=contoso,DC=com", Some(&s)), Verdict::Inside);
        assert_eq!(verdict("cn=Adele Vance, ou=SALES, dc=Contoso, dc=com", Some(&s)), Verdict::Inside);
        assert_eq!(verdict("CN=Adele Vance,OU=Marketing,DC=contoso,DC=com", Some(&s)), Verdict::Outside);
        assert_eq!(verdict("CN=x,OU=Sales,DC=contoso,DC=org", Some(&s)), Verdict::Outside);
        // A sibling whose name ends like the OU is not below it.
        assert_eq!(verdict("CN=x,OU=PreSales,DC=contoso,DC=com", Some(&s)), Verdict::Outside);
    }

    #[test]
    fn escaped_commas_stay_inside_their_name() {
        let s = ous(&[r"OU=Sales\, EMEA,DC=contoso,DC=com"]);
        assert_eq!(verdict(r"CN=Lee\, Ann,OU=Sales\, EMEA,DC=contoso,DC=com", Some(&s)), Verdict::Inside);
        assert_eq!(verdict("CN=Lee,OU=EMEA,DC=contoso,DC=com", Some(&s)), Verdict::Outside);
    }

    #[test]
    fn no_scope_is_everything_and_group_scope_is_unknown() {
        assert_eq!(verdict("CN=a,DC=contoso,DC=com", None), Verdict::Inside);
        let g = Scope {
            organizational_units: None,
            groups: Some(vec![DistinguishedName("CN=Pilot,OU=G,DC=c,DC=com".into())]),
        };
        assert_eq!(verdict("CN=a,OU=Users,DC=c,DC=com", Some(&g)), Verdict::Unknown);
        assert_eq!(verdict("cn=pilot,ou=g,dc=c,dc=com", Some(&g)), Verdict::Inside);
    }
}
