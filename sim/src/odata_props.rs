//! Property tests of the `$filter` parser: no input makes it panic or recurse without bound, and
//! every filter of the supported subset, written out as a client would, parses back to itself.

use proptest::prelude::*;

use super::odata::{Filter, matches, parse_filter};

const PROPS: &[&str] = &["applicationTemplateId", "displayName", "appId"];
const SW: &[&str] = &["displayName", "appId"];

/// Random capitalisation: property names and keywords are case-insensitive.
fn cased(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn clause() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (prop::sample::select(PROPS), prop::option::of(".{0,12}")).prop_map(|(p, v)| Filter::Eq(p.to_string(), v)),
        (prop::sample::select(SW), ".{0,12}").prop_map(|(p, v)| Filter::StartsWith(p.to_string(), v)),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    clause().prop_recursive(4, 12, 2, |inner| {
        (inner.clone(), inner).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b)))
    })
}

/// Writes a filter as a client would; `and` is left-associative, so a right operand that is
/// itself an `and` needs parentheses.
fn render(f: &Filter, mask: u64, parens: bool) -> String {
    let text = match f {
        Filter::And(a, b) => {
            let right = render(b, mask.rotate_left(7), matches!(**b, Filter::And(..)));
            format!("{} {} {right}", render(a, mask.rotate_left(3), parens), cased("and", mask))
        }
        Filter::Eq(p, Some(v)) => format!("{} {} {}", cased(p, mask), cased("eq", mask >> 5), quote(v)),
        Filter::Eq(p, None) => format!("{} eq {}", cased(p, mask), cased("null", mask >> 9)),
        Filter::StartsWith(p, v) => format!("{}({},{})", cased("startsWith", mask >> 2), cased(p, mask), quote(v)),
    };
    if parens { format!("({text})") } else { text }
}

/// An object for which every clause of `f` holds.
fn witness(f: &Filter, obj: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    match f {
        Filter::And(a, b) => witness(a, obj) && witness(b, obj),
        Filter::Eq(p, v) => {
            let v = v.clone().map_or(serde_json::Value::Null, serde_json::Value::from);
            obj.insert(p.clone(), v.clone()).is_none_or(|old| old == v)
        }
        Filter::StartsWith(p, prefix) => match obj.get(p) {
            None => {
                obj.insert(p.clone(), format!("{prefix}-rest").into());
                true
            }
            // Contradictory clauses (two values for one property) have no witness.
            Some(_) => false,
        },
    }
}

fn tokens() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("("),
        Just(")"),
        Just(","),
        Just("and"),
        Just("or"),
        Just("eq"),
        Just("null"),
        Just("startsWith"),
        Just("displayName"),
        Just("appId"),
        Just("'x'"),
        Just("'"),
        Just("''"),
        Just("a/b"),
        Just(" "),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_filter_or_an_error(s in ".{0,80}") {
        let _ = parse_filter(&s, "servicePrincipal", PROPS, SW);
    }

    #[test]
    fn any_token_soup_is_a_filter_or_an_error(s in tokens()) {
        if let Err(e) = parse_filter(&s, "servicePrincipal", PROPS, SW) {
            prop_assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed(depth in 0usize..5000) {
        let s = format!("{}displayName eq 'x'{}", "(".repeat(depth), ")".repeat(depth));
        let r = parse_filter(&s, "servicePrincipal", PROPS, SW);
        prop_assert_eq!(r.is_ok(), depth <= 16, "{}", depth);
    }

    #[test]
    fn written_filters_parse_back_to_themselves(f in filter(), mask in any::<u64>(), parens in any::<bool>()) {
        let text = render(&f, mask, parens);
        let parsed = parse_filter(&text, "servicePrincipal", PROPS, SW);
        prop_assert_eq!(parsed.as_ref(), Ok(&f), "{}", text);
        let mut obj = serde_json::Map::new();
        if witness(&f, &mut obj) {
            prop_assert!(matches(&f, &serde_json::Value::Object(obj)), "{}", text);
        }
    }
}
