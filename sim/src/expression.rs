//! The attribute-mapping expression language of the synchronization service, parsed into the
//! `attributeMappingSource` tree that `parseExpression` returns (reference part 2 §1.3).
//!
//! Grammar (from Microsoft's "writing expressions for attribute mappings" reference):
//! an expression is an `[attribute]` reference, a `"string literal"` (`\"` and `\\` are the only
//! escapes), an integer literal, or a call `Name(arg, arg, ...)` whose arguments are expressions.
//! An argument may be left empty (`Replace([mail], "@x", , , "", , )`) where the function's
//! parameter is optional. Function names match case-insensitively and come back canonical.
//! Positions in messages are 1-based character columns.
//!
//! Not modeled: the `[a] = "b"` comparison shorthand some IIF examples use; write
//! `IIF(IsPresent([a]), ...)` style conditions instead.

use serde_json::{Value, json};

/// One parameter of a function: its name in the parsed tree and whether it may be left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub required: bool,
}

/// A function of the expression language with its parameters; `repeat` parameters follow the
/// fixed ones in groups (Join's sources, Switch's key/value pairs), at least `min_groups` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub params: &'static [Param],
    pub repeat: &'static [&'static str],
    pub min_groups: usize,
}

const fn req(name: &'static str) -> Param {
    Param { name, required: true }
}

const fn opt(name: &'static str) -> Param {
    Param { name, required: false }
}

const fn f(name: &'static str, params: &'static [Param]) -> Function {
    Function { name, params, repeat: &[], min_groups: 0 }
}

const fn variadic(
    name: &'static str,
    params: &'static [Param],
    repeat: &'static [&'static str],
    min_groups: usize,
) -> Function {
    Function { name, params, repeat, min_groups }
}

/// The documented function list (cloud sync's expression reference).
pub const FUNCTIONS: &[Function] = &[
    f("Append", &[req("source"), req("suffix")]),
    f("BitAnd", &[req("value1"), req("value2")]),
    f("CBool", &[req("expression")]),
    f("CDate", &[req("expression")]),
    variadic("Coalesce", &[], &["source"], 1),
    f("ConvertToBase64", &[req("source")]),
    f("ConvertToUTF8Hex", &[req("source")]),
    f("Count", &[req("attribute")]),
    f("CStr", &[req("value")]),
    f("DateAdd", &[req("interval"), req("value"), req("dateTime")]),
    f("DateDiff", &[req("interval"), req("date1"), req("date2")]),
    f("DateFromNum", &[req("value")]),
    f("FormatDateTime", &[req("source"), opt("dateTimeStyles"), req("inputFormat"), req("outputFormat")]),
    f("Guid", &[]),
    f("IgnoreFlowIfNullOrEmpty", &[req("expression")]),
    f("IIF", &[req("condition"), req("valueIfTrue"), req("valueIfFalse")]),
    f("InStr", &[req("value1"), req("value2"), opt("start"), opt("compareType")]),
    f("IsNull", &[req("expression")]),
    f("IsNullOrEmpty", &[req("expression")]),
    f("IsPresent", &[req("expression")]),
    f("IsString", &[req("expression")]),
    f("Item", &[req("attribute"), req("index")]),
    variadic("Join", &[req("separator")], &["source"], 1),
    f("Left", &[req("string"), req("numChars")]),
    f("Mid", &[req("source"), req("start"), req("length")]),
    f("NormalizeDiacritics", &[req("source")]),
    f("Not", &[req("source")]),
    f("Now", &[]),
    f("NumFromDate", &[req("value")]),
    f("PCase", &[req("source"), opt("wordSeparators")]),
    f(
        "RandomString",
        &[
            req("length"),
            req("minimumNumbers"),
            req("minimumSpecialCharacters"),
            req("minimumCapital"),
            req("minimumLowerCase"),
            opt("charactersToAvoid"),
        ],
    ),
    f("RemoveDuplicates", &[req("attribute")]),
    f(
        "Replace",
        &[
            req("source"),
            opt("oldValue"),
            opt("regexPattern"),
            opt("regexGroupName"),
            opt("replacementValue"),
            opt("replacementAttributeName"),
            opt("template"),
        ],
    ),
    variadic("SelectUniqueValue", &[], &["uniqueValueRule"], 2),
    f("SingleAppRoleAssignment", &[req("appRoleAssignments")]),
    f("Split", &[req("source"), req("delimiter")]),
    f("StripSpaces", &[req("source")]),
    variadic("Switch", &[req("source"), req("defaultValue")], &["key", "value"], 1),
    f("ToLower", &[req("source"), opt("culture")]),
    f("ToUpper", &[req("source"), opt("culture")]),
    f("Word", &[req("string"), req("wordNumber"), req("delimiters")]),
];

/// Parameters whose `attributeType` is Integer in the `functions` listing; all others are String.
const INTEGER_PARAMS: &[&str] = &[
    "numChars",
    "start",
    "length",
    "index",
    "wordNumber",
    "minimumNumbers",
    "minimumSpecialCharacters",
    "minimumCapital",
    "minimumLowerCase",
    "value1",
    "value2",
];

impl Function {
    pub fn lookup(name: &str) -> Option<&'static Function> {
        FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The fewest arguments a call must have (the last required fixed parameter, or the minimum
    /// repeat groups).
    pub fn min_args(&self) -> usize {
        if self.repeat.is_empty() {
            self.params.iter().rposition(|p| p.required).map_or(0, |i| i + 1)
        } else {
            self.params.len() + self.repeat.len() * self.min_groups
        }
    }

    /// `None` when the function takes any number of repeat groups.
    pub fn max_args(&self) -> Option<usize> {
        if self.repeat.is_empty() { Some(self.params.len()) } else { None }
    }

    /// Name and requiredness of the argument at `index`.
    fn param_at(&self, index: usize) -> Option<Param> {
        if let Some(p) = self.params.get(index) {
            return Some(*p);
        }
        if self.repeat.is_empty() {
            return None;
        }
        let k = index - self.params.len();
        Some(req(self.repeat[k % self.repeat.len()]))
    }

    /// The `attributeMappingFunctionSchema` the `functions` endpoint lists.
    pub fn schema_json(&self) -> Value {
        let param = |name: &str, required: bool, multiple: bool| {
            let kind = if INTEGER_PARAMS.contains(&name) { "Integer" } else { "String" };
            json!({"name": name, "required": required, "allowMultipleOccurrences": multiple, "type": kind})
        };
        let mut params: Vec<Value> = self.params.iter().map(|p| param(p.name, p.required, false)).collect();
        params.extend(self.repeat.iter().map(|name| param(name, true, true)));
        json!({"id": self.name, "parameters": params})
    }
}

/// A parse failure at a 1-based character column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

/// A parsed expression. `text` is the node's own source, as the service echoes it in
/// `attributeMappingSource.expression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Attribute { name: String, text: String },
    Constant { value: String, text: String },
    Function { function: &'static Function, args: Vec<Option<Expr>>, text: String },
}

impl Expr {
    /// The `attributeMappingSource` tree; omitted optional arguments are left out of `parameters`.
    pub fn to_source(&self) -> Value {
        match self {
            Self::Attribute { name, text } => {
                json!({"type": "Attribute", "name": name, "expression": text, "parameters": []})
            }
            Self::Constant { value, text } => {
                json!({"type": "Constant", "name": value, "expression": text, "parameters": []})
            }
            Self::Function { function, args, text } => {
                let parameters: Vec<Value> = args
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| {
                        let a = a.as_ref()?;
                        let key = function.param_at(i).map_or("", |p| p.name);
                        Some(json!({"key": key, "value": a.to_source()}))
                    })
                    .collect();
                json!({"type": "Function", "name": function.name, "expression": text, "parameters": parameters})
            }
        }
    }
}

/// Parses a whole expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { chars: input.chars().collect(), pos: 0 };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error(0, "the expression is empty"));
    }
    let e = p.expr()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(e),
        Some(c) => Err(p.error(p.pos, format!("unexpected '{c}' after the end of the expression"))),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError { position: at + 1, message: message.into() }
    }

    fn text(&self, from: usize) -> String {
        self.chars[from..self.pos].iter().collect()
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some('[') => self.attribute(),
            Some('"') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.call(),
            Some(c) => Err(self.error(self.pos, format!("unexpected '{c}'; expected an expression"))),
            None => Err(self.error(self.pos, "unexpected end of the expression; expected an expression")),
        }
    }

    fn attribute(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut name = String::new();
        loop {
            match self.peek() {
                Some(']') => break,
                Some(c @ ('[' | '"' | '\n' | '\r')) => {
                    return Err(self.error(self.pos, format!("'{c}' is not allowed in an attribute name")));
                }
                Some(c) => name.push(c),
                None => return Err(self.error(start, "unterminated attribute reference; expected ']'")),
            }
            self.pos += 1;
        }
        self.pos += 1;
        if name.trim().is_empty() {
            return Err(self.error(start, "empty attribute name"));
        }
        Ok(Expr::Attribute { name, text: self.text(start) })
    }

    fn string(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                Some('"') => break,
                Some('\\') => {
                    match self.chars.get(self.pos + 1) {
                        Some(c @ ('"' | '\\')) => value.push(*c),
                        Some(c) => {
                            return Err(self.error(
                                self.pos,
                                format!("invalid escape sequence '\\{c}'; only \\\" and \\\\ are allowed"),
                            ));
                        }
                        None => return Err(self.error(start, "unterminated string literal")),
                    }
                    self.pos += 1;
                }
                Some(c) => value.push(c),
                None => return Err(self.error(start, "unterminated string literal")),
            }
            self.pos += 1;
        }
        self.pos += 1;
        Ok(Expr::Constant { value, text: self.text(start) })
    }

    fn number(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        let digits = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == digits {
            return Err(self.error(start, "'-' must be followed by digits"));
        }
        if let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '.') {
            return Err(self.error(self.pos, format!("unexpected '{c}' in a number literal")));
        }
        let text = self.text(start);
        Ok(Expr::Constant { value: text.clone(), text })
    }

    fn call(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let name = self.text(start);
        let function =
            Function::lookup(&name).ok_or_else(|| self.error(start, format!("unknown function '{name}'")))?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error(self.pos, format!("expected '(' after function name '{}'", function.name)));
        }
        let open = self.pos;
        self.pos += 1;
        let args = self.arguments(function, open)?;
        let text = self.text(start);
        Ok(Expr::Function { function, args, text })
    }

    /// Arguments after `(` up to and including `)`; an empty slot is `None`.
    fn arguments(&mut self, function: &'static Function, open: usize) -> Result<Vec<Option<Expr>>, ParseError> {
        let mut args: Vec<Option<Expr>> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                slots.push(self.pos);
                match self.peek() {
                    Some(',' | ')') => args.push(None),
                    None => return Err(self.error(open, format!("unclosed '(' of {}", function.name))),
                    _ => args.push(Some(self.expr()?)),
                }
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(self.error(self.pos, format!("unexpected '{c}'; expected ',' or ')'")));
                    }
                    None => return Err(self.error(open, format!("unclosed '(' of {}", function.name))),
                }
            }
        }
        self.check_arity(function, open, &args, &slots)?;
        Ok(args)
    }

    fn check_arity(
        &self,
        function: &Function,
        open: usize,
        args: &[Option<Expr>],
        slots: &[usize],
    ) -> Result<(), ParseError> {
        let n = args.len();
        let name = function.name;
        if let Some(max) = function.max_args()
            && n > max
        {
            let at = slots.get(max).copied().unwrap_or(open);
            return Err(self.error(at, format!("{name} takes at most {max} arguments, got {n}")));
        }
        let min = function.min_args();
        if n < min {
            return Err(self.error(open, format!("{name} needs at least {min} arguments, got {n}")));
        }
        if !function.repeat.is_empty() {
            let extra = n - function.params.len();
            if !extra.is_multiple_of(function.repeat.len()) {
                let group = function.repeat.join(", ");
                return Err(self.error(open, format!("{name} takes its trailing arguments in groups of ({group})")));
            }
        }
        for (i, a) in args.iter().enumerate() {
            if a.is_none()
                && let Some(p) = function.param_at(i).filter(|p| p.required)
            {
                let at = slots.get(i).copied().unwrap_or(open);
                return Err(self.error(at, format!("argument '{}' of {name} is required and cannot be empty", p.name)));
            }
        }
        Ok(())
    }
}

/// Evaluates `e` against a test object's properties, for the functions whose semantics are
/// simple enough to model (string building, casing, Switch, IIF, presence tests). `None`: the
/// expression uses a function the simulator does not evaluate (`evaluationSucceeded: false`).
pub fn evaluate(e: &Expr, props: &[(String, String)]) -> Option<Vec<String>> {
    eval(e, props).map(|v| v.into_iter().collect())
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

fn flag(b: bool) -> Option<String> {
    Some(if b { "True" } else { "False" }.to_owned())
}

fn number(v: &Option<String>) -> Option<usize> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}

fn strip_diacritics(s: &str) -> String {
    const FROM: &str = "ÀÁÂÃÄÅàáâãäåÈÉÊËèéêëÌÍÎÏìíîïÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÝýÿÑñÇç";
    const TO: &str = "AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOOooooooUUUUuuuuYyyNnCc";
    s.chars().map(|c| FROM.chars().position(|f| f == c).and_then(|i| TO.chars().nth(i)).unwrap_or(c)).collect()
}

fn eval(e: &Expr, props: &[(String, String)]) -> Option<Option<String>> {
    let (function, args) = match e {
        Expr::Attribute { name, .. } => {
            return Some(props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()));
        }
        Expr::Constant { value, .. } => return Some(Some(value.clone())),
        Expr::Function { function, args, .. } => (function, args),
    };
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        values.push(match a {
            Some(a) => eval(a, props)?,
            None => None,
        });
    }
    let arg = |i: usize| values.get(i).cloned().flatten();
    let out = match function.name {
        "Append" => arg(0).map(|s| s + &arg(1).unwrap_or_default()),
        "Join" => {
            let sep = arg(0).unwrap_or_default();
            Some(values.iter().skip(1).flatten().cloned().collect::<Vec<_>>().join(&sep))
        }
        "ToLower" => arg(0).map(|s| s.to_lowercase()),
        "ToUpper" => arg(0).map(|s| s.to_uppercase()),
        "StripSpaces" => arg(0).map(|s| s.chars().filter(|c| *c != ' ').collect()),
        "NormalizeDiacritics" => arg(0).map(|s| strip_diacritics(&s)),
        "Left" => arg(0).map(|s| s.chars().take(number(&arg(1)).unwrap_or(0)).collect()),
        "Mid" => arg(0).map(|s| {
            let start = number(&arg(1)).unwrap_or(1).max(1) - 1;
            s.chars().skip(start).take(number(&arg(2)).unwrap_or(0)).collect()
        }),
        "Coalesce" => values.iter().flatten().find(|v| !v.is_empty()).cloned(),
        "IsPresent" => flag(arg(0).is_some_and(|s| !s.is_empty())),
        "IsNullOrEmpty" => flag(arg(0).is_none_or(|s| s.is_empty())),
        "IsNull" => flag(arg(0).is_none()),
        "Not" => flag(!truthy(&arg(0))),
        "IIF" => {
            if truthy(&arg(0)) {
                arg(1)
            } else {
                arg(2)
            }
        }
        "Switch" => {
            let source = arg(0);
            let pairs: Vec<_> = values.iter().skip(2).cloned().collect();
            pairs
                .chunks(2)
                .find(|kv| kv.first().cloned().flatten() == source)
                .map_or_else(|| arg(1), |kv| kv.get(1).cloned().flatten())
        }
        "Replace" if values.get(2).is_none_or(Option::is_none) => arg(0).map(|s| match arg(1) {
            Some(old) if !old.is_empty() => s.replace(&old, &arg(4).unwrap_or_default()),
            _ => s,
        }),
        _ => return None,
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> ParseError {
        parse(input).expect_err(input)
    }

    #[test]
    fn attribute_reference() {
        let e = parse("[mail]").unwrap();
        assert_eq!(
            e.to_source(),
            json!({"type": "Attribute", "name": "mail", "expression": "[mail]", "parameters": []})
        );
        let e = parse("  [msDS-ExternalDirectoryObjectId]  ").unwrap();
        assert_eq!(e.to_source()["name"], "msDS-ExternalDirectoryObjectId");
        assert_eq!(parse("[extension_0123_WritebackEnabled]").unwrap().to_source()["type"], "Attribute");
    }

    #[test]
    fn string_literals_and_escapes() {
        let e = parse(r#""Company: \"Contoso\" \\ HQ""#).unwrap();
        let s = e.to_source();
        assert_eq!(s["type"], "Constant");
        assert_eq!(s["name"], r#"Company: "Contoso" \ HQ"#);
        assert_eq!(s["expression"], r#""Company: \"Contoso\" \\ HQ""#);
        assert_eq!(parse(r#""""#).unwrap().to_source()["name"], "");
        let e = err(r#""a\nb""#);
        assert_eq!(e.position, 3);
        assert!(e.message.contains("escape"), "{e}");
        let e = err(r#"Append([a], "tail"#);
        assert_eq!((e.position, e.message.as_str()), (13, "unterminated string literal"));
    }

    #[test]
    fn numbers() {
        let s = parse("Mid([displayName], 1, 3)").unwrap().to_source();
        assert_eq!(
            s["parameters"][1],
            json!({"key": "start", "value": {"type": "Constant", "name": "1", "expression": "1", "parameters": []}})
        );
        assert_eq!(err("Left([a], 3x)").position, 12);
        assert_eq!(err("Left([a], -)").position, 11);
        assert!(parse("Left([a], -3)").is_ok());
    }

    #[test]
    fn join_tree() {
        let s = parse(r#"Join(" ", [givenName], [sn])"#).unwrap().to_source();
        assert_eq!(s["type"], "Function");
        assert_eq!(s["name"], "Join");
        assert_eq!(s["expression"], r#"Join(" ", [givenName], [sn])"#);
        let keys: Vec<&str> = s["parameters"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["separator", "source", "source"]);
        assert_eq!(s["parameters"][0]["value"]["name"], " ");
        assert_eq!(
            s["parameters"][2]["value"],
            json!({"type": "Attribute", "name": "sn", "expression": "[sn]", "parameters": []})
        );
    }

    #[test]
    fn nesting_and_whitespace() {
        let input = " ToLower ( Join ( \".\" ,\n NormalizeDiacritics([givenName]) , StripSpaces( [sn] ) ) ) ";
        let s = parse(input).unwrap().to_source();
        assert_eq!(s["name"], "ToLower");
        assert_eq!(s["parameters"].as_array().unwrap().len(), 1, "culture omitted");
        let join = &s["parameters"][0]["value"];
        assert_eq!(join["name"], "Join");
        assert_eq!(join["parameters"][1]["value"]["name"], "NormalizeDiacritics");
        assert_eq!(join["parameters"][1]["value"]["expression"], "NormalizeDiacritics([givenName])");
        assert_eq!(join["parameters"][2]["value"]["parameters"][0]["value"]["name"], "sn");
    }

    #[test]
    fn omitted_optional_arguments() {
        // The reference's own example.
        let s = parse(r#"Replace([mail], "@contoso.com", , , "", , )"#).unwrap().to_source();
        let keys: Vec<&str> = s["parameters"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["source", "oldValue", "replacementValue"]);
        assert_eq!(s["parameters"][2]["value"]["name"], "");
        assert!(parse(r#"FormatDateTime([whenCreated], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#).is_ok());
        let e = err(r#"FormatDateTime([whenCreated], , , "yyyy-MM-dd")"#);
        assert!(e.message.contains("'inputFormat' of FormatDateTime is required"), "{e}");
        assert_eq!(e.position, 33);
        let e = err("Append( , \"x\")");
        assert_eq!(e.position, 9);
    }

    #[test]
    fn function_names_and_arity() {
        assert_eq!(parse("guid()").unwrap().to_source()["name"], "Guid", "canonical name");
        assert_eq!(parse("Now()").unwrap().to_source()["parameters"], json!([]));
        let e = err("Frobnicate([a])");
        assert_eq!((e.position, e.message.as_str()), (1, "unknown function 'Frobnicate'"));
        let e = err("Append([a])");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("at least 2 arguments, got 1"), "{e}");
        let e = err(r#"Append([a], "b", "c")"#);
        assert_eq!(e.position, 18);
        assert!(e.message.contains("at most 2 arguments, got 3"), "{e}");
        assert!(err(r#"Join(" ")"#).message.contains("at least 2"));
        assert!(parse(r#"Join(",", [a], [b], [c], [d])"#).is_ok());
        assert!(err("Guid([a])").message.contains("at most 0"));
        assert!(err("SelectUniqueValue([a])").message.contains("at least 2"));
        assert!(parse(r#"Switch([st], "OU=Default", "WA", "OU=West", "NY", "OU=East")"#).is_ok());
        let e = err(r#"Switch([st], "OU=Default", "WA")"#);
        assert!(e.message.contains("at least 4"), "{e}");
        let e = err(r#"Switch([st], "d", "WA", "w", "NY")"#);
        assert!(e.message.contains("groups of (key, value)"), "{e}");
        assert!(parse(r#"IIF(IsPresent([mobile]), [mobile], "none")"#).is_ok());
        assert!(err("IIF(IsPresent([mobile]), [mobile])").message.contains("at least 3"));
    }

    #[test]
    fn syntax_errors_with_positions() {
        assert_eq!(err("").position, 1);
        assert_eq!(err("   ").message, "the expression is empty");
        let e = err("[mail");
        assert_eq!((e.position, e.message.as_str()), (1, "unterminated attribute reference; expected ']'"));
        assert_eq!(err("[]").message, "empty attribute name");
        assert_eq!(err("[a\"b]").position, 3);
        let e = err("Join(\",\", [a] [b])");
        assert_eq!(e.position, 15);
        assert!(e.message.contains("expected ',' or ')'"), "{e}");
        let e = err("ToLower([a]");
        assert_eq!((e.position, e.message.as_str()), (8, "unclosed '(' of ToLower"));
        let e = err("[a] [b]");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("after the end"), "{e}");
        let e = err("ToLower [a]");
        assert!(e.message.contains("expected '('"), "{e}");
        assert_eq!(err("Append([a], +)").position, 13);
        assert!(err("mail").message.contains("unknown function 'mail'"));
        assert_eq!(format!("{}", err("@")), "unexpected '@'; expected an expression at position 1");
        // Columns count characters, not bytes.
        let e = err("Join(\"é\", [a], )");
        assert_eq!(e.position, 16);
        assert!(e.message.contains("'source' of Join is required"), "{e}");
        // Errors deep inside nesting point at the inner problem.
        let e = err("ToLower(Join(\",\", Mid([a], 1), [b]))");
        assert_eq!(e.position, 22);
        assert!(e.message.contains("Mid needs at least 3 arguments, got 2"), "{e}");
    }

    #[test]
    fn evaluation() {
        let props = vec![("givenName".to_owned(), "Zoë".to_owned()), ("sn".to_owned(), "Brontë Smith".to_owned())];
        let eval = |s: &str| evaluate(&parse(s).unwrap(), &props);
        assert_eq!(eval(r#"Join(" ", [givenName], [sn])"#), Some(vec!["Zoë Brontë Smith".to_owned()]));
        assert_eq!(
            eval(r#"ToLower(NormalizeDiacritics(Join(".", [givenName], StripSpaces([sn]))))"#),
            Some(vec!["zoe.bronteSmith".to_lowercase()])
        );
        assert_eq!(eval("Mid([sn], 1, 3)"), Some(vec!["Bro".to_owned()]));
        assert_eq!(eval(r#"IIF(IsPresent([mobile]), [mobile], "none")"#), Some(vec!["none".to_owned()]));
        assert_eq!(eval(r#"Switch([givenName], "d", "Zoë", "z")"#), Some(vec!["z".to_owned()]));
        assert_eq!(eval(r#"Replace([sn], " Smith", , , "", , )"#), Some(vec!["Brontë".to_owned()]));
        assert_eq!(eval("[mobile]"), Some(vec![]), "a missing attribute evaluates to nothing");
        assert_eq!(eval("Guid()"), None, "not evaluated");
    }

    #[test]
    fn functions_listing() {
        let join = Function::lookup("Join").unwrap().schema_json();
        assert_eq!(join["id"], "Join");
        assert_eq!(join["parameters"][1]["allowMultipleOccurrences"], true);
        let mid = Function::lookup("mid").unwrap();
        assert_eq!((mid.min_args(), mid.max_args()), (3, Some(3)));
        let replace = Function::lookup("Replace").unwrap();
        assert_eq!((replace.min_args(), replace.max_args()), (1, Some(7)));
        assert_eq!(Function::lookup("Switch").unwrap().min_args(), 4);
        assert!(FUNCTIONS.len() >= 40);
    }
}
