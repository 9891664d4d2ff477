//! The OData query subset Graph supports on `/servicePrincipals` and `/applications` without the
//! advanced-query headers (reference §1.3): `eq` (including `eq null`) and `startsWith` combined
//! with `and`, parentheses optional, `$select` and `$top`.
//!
//! Directory string comparisons are case-insensitive, so `displayName eq 'contoso.com'` also finds
//! `Contoso.com`; a client that treats display names as case-sensitive keys is caught by this.

use serde_json::{Map, Value};

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    /// `prop eq 'value'`, or `prop eq null` when the value is `None`.
    Eq(String, Option<String>),
    StartsWith(String, String),
}

/// Why a query cannot be answered; becomes 400 `Request_UnsupportedQuery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::LParen);
            }
            ')' => {
                chars.next();
                tokens.push(Token::RParen);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\'')) => {
                            // OData escapes a quote inside a literal by doubling it.
                            if matches!(chars.peek(), Some((_, '\''))) {
                                chars.next();
                                s.push('\'');
                            } else {
                                break;
                            }
                        }
                        Some((_, ch)) => s.push(ch),
                        None => {
                            return Err(QueryError(format!(
                                "Invalid filter clause: unterminated string literal at position {pos}."
                            )));
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ':' | '@' | '$') => {
                let mut s = String::new();
                while let Some(&(_, ch)) = chars.peek() {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '/' | '.' | '-' | ':' | '@' | '$') {
                        s.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Ident(s));
            }
            other => {
                return Err(QueryError(format!(
                    "Invalid filter clause: syntax error at position {pos}, character '{other}' is not valid."
                )));
            }
        }
    }
    Ok(tokens)
}

/// Bounds on nesting and clauses: recursion (parsing, evaluation, dropping the tree) must stay
/// shallow whatever a client sends.
const MAX_DEPTH: usize = 16;
const MAX_CLAUSES: usize = 64;

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    clauses: usize,
    properties: &'a [&'a str],
    starts_with: &'a [&'a str],
    resource: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, want: Token, what: &str) -> Result<(), QueryError> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            _ => Err(QueryError(format!("Invalid filter clause: expected {what}."))),
        }
    }

    fn expr(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.term()?;
        loop {
            if self.peek_keyword("and") {
                self.next();
                self.clauses += 1;
                if self.clauses > MAX_CLAUSES {
                    return Err(QueryError(format!("Unsupported query: more than {MAX_CLAUSES} clauses.")));
                }
                let right = self.term()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else if let Some(Token::Ident(kw)) = self.peek() {
                return Err(unsupported_operator(kw));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self) -> Result<Filter, QueryError> {
        match self.next() {
            Some(Token::LParen) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(QueryError(format!("Unsupported query: parentheses nested deeper than {MAX_DEPTH}.")));
                }
                let inner = self.expr()?;
                self.expect(Token::RParen, "')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::Ident(name)) if name.eq_ignore_ascii_case("startsWith") => {
                self.expect(Token::LParen, "'(' after startsWith")?;
                let prop = match self.next() {
                    Some(Token::Ident(p)) => self.property(&p, self.starts_with)?,
                    _ => return Err(QueryError("Invalid filter clause: startsWith needs a property.".into())),
                };
                self.expect(Token::Comma, "','")?;
                let value = match self.next() {
                    Some(Token::Str(s)) => s,
                    _ => return Err(QueryError("Invalid filter clause: startsWith needs a string literal.".into())),
                };
                self.expect(Token::RParen, "')'")?;
                Ok(Filter::StartsWith(prop, value))
            }
            Some(Token::Ident(name)) if is_keyword(&name) => Err(unsupported_operator(&name)),
            Some(Token::Ident(name)) if self.peek() == Some(&Token::LParen) => {
                Err(QueryError(format!("Unsupported query: the function '{name}' is not supported.")))
            }
            Some(Token::Ident(name)) => {
                if name.contains('/') {
                    return Err(QueryError(format!(
                        "Unsupported query: lambda and navigation expressions such as '{name}' are not supported."
                    )));
                }
                let prop = self.property(&name, self.properties)?;
                match self.next() {
                    Some(Token::Ident(op)) if op.eq_ignore_ascii_case("eq") => {}
                    Some(Token::Ident(op)) => return Err(unsupported_operator(&op)),
                    _ => {
                        return Err(QueryError(format!("Invalid filter clause: expected an operator after '{name}'.")));
                    }
                }
                match self.next() {
                    Some(Token::Str(s)) => Ok(Filter::Eq(prop, Some(s))),
                    Some(Token::Ident(n)) if n.eq_ignore_ascii_case("null") => Ok(Filter::Eq(prop, None)),
                    _ => Err(QueryError(format!(
                        "Invalid filter clause: the right side of 'eq' for '{prop}' must be a string literal or null."
                    ))),
                }
            }
            Some(Token::Str(_)) => {
                Err(QueryError("Unsupported query: a literal must be on the right side of the operator.".into()))
            }
            _ => Err(QueryError("Invalid filter clause: expected an expression.".into())),
        }
    }

    /// Maps a property name (case-insensitive, like Graph) to its canonical spelling.
    fn property(&self, name: &str, allowed: &[&str]) -> Result<String, QueryError> {
        allowed.iter().find(|p| p.eq_ignore_ascii_case(name)).map(|p| (*p).to_owned()).ok_or_else(|| {
            QueryError(format!(
                "Unsupported or invalid query filter clause specified for property '{name}' of resource '{}'.",
                self.resource
            ))
        })
    }
}

fn is_keyword(s: &str) -> bool {
    ["and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "has", "null", "true", "false"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(s))
}

fn unsupported_operator(op: &str) -> QueryError {
    QueryError(format!(
        "Unsupported query: the operator '{op}' is not supported by this endpoint without advanced query parameters."
    ))
}

/// Parses `$filter`. `properties` may appear with `eq`, `starts_with` with `startsWith`.
pub fn parse_filter(
    input: &str,
    resource: &str,
    properties: &[&str],
    starts_with: &[&str],
) -> Result<Filter, QueryError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(QueryError("Invalid filter clause: the filter is empty.".into()));
    }
    let mut parser = Parser { tokens, pos: 0, depth: 0, clauses: 0, properties, starts_with, resource };
    let filter = parser.expr()?;
    if parser.pos < parser.tokens.len() {
        return Err(QueryError("Invalid filter clause: unexpected trailing input.".into()));
    }
    Ok(filter)
}

/// Evaluates a filter against a JSON object.
pub fn matches(filter: &Filter, object: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, object) && matches(b, object),
        Filter::Eq(prop, None) => object.get(prop).is_none_or(Value::is_null),
        Filter::Eq(prop, Some(want)) => {
            object.get(prop).and_then(Value::as_str).is_some_and(|have| have.to_lowercase() == want.to_lowercase())
        }
        Filter::StartsWith(prop, prefix) => object
            .get(prop)
            .and_then(Value::as_str)
            .is_some_and(|have| have.to_lowercase().starts_with(&prefix.to_lowercase())),
    }
}

/// Parses `$select` into property names.
pub fn parse_select(input: &str) -> Vec<String> {
    input.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Keeps only the selected properties (matched case-insensitively); annotations stay.
pub fn apply_select(object: &Value, select: &[String]) -> Value {
    let Value::Object(map) = object else {
        return object.clone();
    };
    let kept: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| k.starts_with("@odata.") || select.iter().any(|s| s.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// Parses `$top` (Graph accepts 1..=999 for directory objects).
pub fn parse_top(input: &str) -> Result<usize, String> {
    match input.trim().parse::<usize>() {
        Ok(n) if (1..=999).contains(&n) => Ok(n),
        _ => Err(format!("Invalid page size specified: '{input}'. Must be between 1 and 999 inclusive.")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROPS: &[&str] = &["applicationTemplateId", "displayName", "appId"];
    const SW: &[&str] = &["displayName", "appId"];

    fn parse(s: &str) -> Result<Filter, QueryError> {
        parse_filter(s, "ServicePrincipal", PROPS, SW)
    }

    fn eq(p: &str, v: &str) -> Filter {
        Filter::Eq(p.into(), Some(v.into()))
    }

    #[test]
    fn eq_and_combinations() {
        assert_eq!(parse("displayName eq 'contoso.com'"), Ok(eq("displayName", "contoso.com")));
        assert_eq!(
            parse("applicationTemplateId eq '1a4721b3' and displayName eq 'x'"),
            Ok(Filter::And(Box::new(eq("applicationTemplateId", "1a4721b3")), Box::new(eq("displayName", "x"))))
        );
        assert_eq!(
            parse("(applicationTemplateId eq 'a') and (displayName eq 'b')"),
            parse("applicationTemplateId eq 'a' and displayName eq 'b'")
        );
        assert_eq!(parse("((appId eq 'a'))"), Ok(eq("appId", "a")));
        assert_eq!(parse("DISPLAYNAME EQ 'a'"), Ok(eq("displayName", "a")));
        assert_eq!(parse("applicationTemplateId eq null"), Ok(Filter::Eq("applicationTemplateId".into(), None)));
    }

    #[test]
    fn escaped_quotes() {
        assert_eq!(parse("displayName eq 'O''Brien.com'"), Ok(eq("displayName", "O'Brien.com")));
        assert_eq!(parse("displayName eq ''''"), Ok(eq("displayName", "'")));
        assert_eq!(parse("displayName eq ''"), Ok(eq("displayName", "")));
    }

    #[test]
    fn starts_with() {
        assert_eq!(parse("startsWith(displayName,'con')"), Ok(Filter::StartsWith("displayName".into(), "con".into())));
        assert_eq!(
            parse("startswith(displayName, 'a b') and appId eq 'x'"),
            Ok(Filter::And(
                Box::new(Filter::StartsWith("displayName".into(), "a b".into())),
                Box::new(eq("appId", "x"))
            ))
        );
    }

    #[test]
    fn unsupported() {
        for bad in [
            "displayName ne 'x'",
            "displayName eq 'x' or appId eq 'y'",
            "not(displayName eq 'x')",
            "appId in ('a','b')",
            "tags/any(t:t eq 'x')",
            "endsWith(displayName,'x')",
            "foo eq 'x'",
            "startsWith(applicationTemplateId,'x')",
            "displayName eq 'unterminated",
            "displayName eq",
            "displayName eq 5",
            "'x' eq displayName",
            "displayName eq 'x' and",
            "(displayName eq 'x'",
            "displayName eq 'x')",
            "",
            "displayName eq 'x' appId eq 'y'",
            "displayName eq 'x' # y",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
        let deep = format!("{}displayName eq 'x'{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).is_err());
        assert!(parse(&format!("{}displayName eq 'x'{}", "(".repeat(16), ")".repeat(16))).is_ok());
        assert!(parse(&vec!["displayName eq 'x'"; 100].join(" and ")).is_err());
    }

    #[test]
    fn evaluation() {
        let sp = json!({"displayName": "Contoso.com", "appId": "A1", "applicationTemplateId": null});
        assert!(matches(&parse("displayName eq 'contoso.com'").unwrap(), &sp));
        assert!(matches(&parse("applicationTemplateId eq null").unwrap(), &sp));
        assert!(!matches(&parse("applicationTemplateId eq 'x'").unwrap(), &sp));
        assert!(matches(&parse("startsWith(displayName,'CON') and appId eq 'a1'").unwrap(), &sp));
        assert!(!matches(&parse("startsWith(displayName,'x')").unwrap(), &sp));
        let obrien = json!({"displayName": "O'Brien.com"});
        assert!(matches(&parse("displayName eq 'O''Brien.com'").unwrap(), &obrien));
    }

    #[test]
    fn select_and_top() {
        let o = json!({"id": "1", "displayName": "x", "appId": "a", "@odata.type": "t"});
        assert_eq!(
            apply_select(&o, &parse_select("displayName, APPID")),
            json!({"displayName": "x", "appId": "a", "@odata.type": "t"})
        );
        assert_eq!(parse_top("5"), Ok(5));
        assert!(parse_top("0").is_err());
        assert!(parse_top("1000").is_err());
        assert!(parse_top("x").is_err());
    }
}
