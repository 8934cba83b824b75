//! `labelSelector` and `fieldSelector` as the real server parses them.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Operator {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

#[derive(Debug)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Requirements joined by AND. An empty selector matches everything.
#[derive(Debug, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Identifier(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    Open,
    Close,
    Comma,
}

fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' | '=' => {
                chars.next();
                let double = chars.peek() == Some(&'=');
                if double {
                    chars.next();
                }
                tokens.push(match (c, double) {
                    ('!', true) => Token::NotEquals,
                    ('!', false) => Token::Not,
                    (_, true) => Token::DoubleEquals,
                    (_, false) => Token::Equals,
                });
            }
            '>' | '<' | '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '>' => Token::GreaterThan,
                    '<' => Token::LessThan,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "!=><(),".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Identifier(word));
            }
        }
    }
    tokens
}

fn valid_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    !name.is_empty()
        && valid_value(name)
        && prefix.len() <= 253
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
        && !(key.contains('/') && prefix.is_empty())
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let tokens = tokenize(input);
        let mut requirements = Vec::new();
        let mut position = 0;
        while position < tokens.len() {
            let (requirement, next) = parse_requirement(&tokens, position)?;
            requirements.push(requirement);
            position = next;
            match tokens.get(position) {
                None => {}
                Some(Token::Comma) if position + 1 < tokens.len() => position += 1,
                Some(other) => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        describe(Some(other))
                    ));
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match r.operator {
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
                Operator::Equals | Operator::In => {
                    value.is_some_and(|v| r.values.iter().any(|x| x == v))
                }
                Operator::NotEquals | Operator::NotIn => {
                    !value.is_some_and(|v| r.values.iter().any(|x| x == v))
                }
                Operator::GreaterThan | Operator::LessThan => {
                    let (Some(Ok(actual)), Some(Ok(bound))) = (
                        value.map(str::parse::<i64>),
                        r.values.first().map(|b| b.parse::<i64>()),
                    ) else {
                        return false;
                    };
                    if r.operator == Operator::GreaterThan {
                        actual > bound
                    } else {
                        actual < bound
                    }
                }
            }
        })
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "end of string".to_owned(),
        Some(Token::Identifier(word)) => word.clone(),
        Some(Token::Not) => "!".to_owned(),
        Some(Token::Equals) => "=".to_owned(),
        Some(Token::DoubleEquals) => "==".to_owned(),
        Some(Token::NotEquals) => "!=".to_owned(),
        Some(Token::GreaterThan) => ">".to_owned(),
        Some(Token::LessThan) => "<".to_owned(),
        Some(Token::Open) => "(".to_owned(),
        Some(Token::Close) => ")".to_owned(),
        Some(Token::Comma) => ",".to_owned(),
    }
}

fn parse_requirement(tokens: &[Token], start: usize) -> Result<(Requirement, usize), String> {
    let mut position = start;
    let negated = tokens.get(position) == Some(&Token::Not);
    if negated {
        position += 1;
    }
    let key = match tokens.get(position) {
        Some(Token::Identifier(key)) if valid_key(key) => key.clone(),
        Some(Token::Identifier(key)) => return Err(format!("invalid label key {key:?}")),
        other => return Err(format!("found '{}', expected: identifier", describe(other))),
    };
    position += 1;
    let at_end = matches!(tokens.get(position), None | Some(Token::Comma));
    if negated || at_end {
        if negated && !at_end {
            return Err(format!(
                "found '{}', expected: ',' or 'end of string'",
                describe(tokens.get(position))
            ));
        }
        let operator = if negated {
            Operator::DoesNotExist
        } else {
            Operator::Exists
        };
        return Ok((
            Requirement {
                key,
                operator,
                values: Vec::new(),
            },
            position,
        ));
    }
    let operator = match tokens.get(position) {
        Some(Token::Equals | Token::DoubleEquals) => Operator::Equals,
        Some(Token::NotEquals) => Operator::NotEquals,
        Some(Token::GreaterThan) => Operator::GreaterThan,
        Some(Token::LessThan) => Operator::LessThan,
        Some(Token::Identifier(word)) if word == "in" => Operator::In,
        Some(Token::Identifier(word)) if word == "notin" => Operator::NotIn,
        other => {
            return Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                describe(other)
            ));
        }
    };
    position += 1;
    let (values, position) = if matches!(operator, Operator::In | Operator::NotIn) {
        parse_set(tokens, position)?
    } else {
        parse_single_value(tokens, position, &operator)?
    };
    if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
        return Err(format!("invalid label value: {bad:?}"));
    }
    Ok((
        Requirement {
            key,
            operator,
            values,
        },
        position,
    ))
}

/// `(a, b, c)` after `in` or `notin`; the set may not be empty.
fn parse_set(tokens: &[Token], start: usize) -> Result<(Vec<String>, usize), String> {
    let mut position = start;
    if tokens.get(position) != Some(&Token::Open) {
        return Err(format!(
            "found '{}', expected: '('",
            describe(tokens.get(position))
        ));
    }
    position += 1;
    let mut values = Vec::new();
    loop {
        match tokens.get(position) {
            Some(Token::Identifier(value)) => values.push(value.clone()),
            other => return Err(format!("found '{}', expected: identifier", describe(other))),
        }
        position += 1;
        match tokens.get(position) {
            Some(Token::Comma) => position += 1,
            Some(Token::Close) => return Ok((values, position + 1)),
            other => return Err(format!("found '{}', expected: ',' or ')'", describe(other))),
        }
    }
}

fn parse_single_value(
    tokens: &[Token],
    start: usize,
    operator: &Operator,
) -> Result<(Vec<String>, usize), String> {
    let (value, position) = match tokens.get(start) {
        Some(Token::Identifier(value)) => (value.clone(), start + 1),
        // `k=` selects the empty value, as it does on the real server.
        None | Some(Token::Comma) if matches!(operator, Operator::Equals | Operator::NotEquals) => {
            (String::new(), start)
        }
        other => return Err(format!("found '{}', expected: identifier", describe(other))),
    };
    if matches!(operator, Operator::GreaterThan | Operator::LessThan)
        && value.parse::<i64>().is_err()
    {
        return Err(format!(
            "for 'Gt', 'Lt' operators, the value must be an integer: {value:?}"
        ));
    }
    Ok((vec![value], position))
}

/// `metadata.name` and `metadata.namespace` terms joined by AND, the fields
/// every kind supports on the real server.
#[derive(Debug, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(input: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in input.split(',').filter(|t| !t.trim().is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let pointer = if field == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldSelector, LabelSelector};

    fn matches(selector: &str, labels: &serde_json::Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(labels.as_object())
    }

    #[test]
    fn label_selector_grammar() {
        let labels =
            json!({"app": "web", "tier": "front", "replicas": "3", "example.com/team": "a"});
        assert!(matches("", &labels));
        assert!(matches("app=web", &labels));
        assert!(matches("app==web,tier", &labels));
        assert!(matches("app != db", &labels));
        assert!(matches("missing!=x", &labels));
        assert!(matches("!missing", &labels));
        assert!(!matches("!app", &labels));
        assert!(matches("tier in (front, back),app notin (db)", &labels));
        assert!(!matches("tier notin (front)", &labels));
        assert!(matches("missing notin (front)", &labels));
        assert!(matches("replicas>2,replicas<4", &labels));
        assert!(!matches("app>2", &labels));
        assert!(matches("example.com/team=a", &labels));
        assert!(!matches("app=", &labels));
        assert!(matches("missing=", &json!({"missing": ""})));
    }

    #[test]
    fn label_selector_rejects_what_the_real_server_rejects() {
        for bad in [
            "app in ()",
            "app in (a",
            "=web",
            "app=web,",
            "app web",
            "app>x",
            "app=-bad-",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn field_selector_supports_name_and_namespace_only() {
        let object = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .matches(&object)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==ns,metadata.name!=b")
                .unwrap()
                .matches(&object)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .unwrap()
                .matches(&object)
        );
        assert!(FieldSelector::parse("spec.nodeName=x").is_err());
    }
}
