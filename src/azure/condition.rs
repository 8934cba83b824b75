//! Role assignment conditions (Azure ABAC, `conditionVersion` 2.0), evaluated as far as doctor
//! can: for an operation and the ACR repository a Flux object pulls. The form registries in ABAC
//! mode use (container-registry-rbac-abac-repository-permissions.md) is
//!
//! ```text
//! ((!(ActionMatches{'…/repositories/content/read'}) AND !(ActionMatches{'…/metadata/read'}))
//!   OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name]
//!       StringEqualsIgnoreCase 'app'))
//! ```
//!
//! Logic is three-valued: an attribute doctor does not know (a principal's, the environment's,
//! or the repository of an object that names none) is unknown, and only decides the result
//! when the known parts do not. Pure.

use super::permissions::matches;

/// The attribute that names an ACR repository, under `@Request` or `@Resource`.
pub const ACR_REPOSITORY: &str = "Microsoft.ContainerRegistry/registries/repositories:name";

/// The repository a Flux object reaches in a registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Repository {
    /// `oci://host/app` and ImageRepository `host/app`: `app`.
    Exact(String),
    /// An OCI HelmRepository names a prefix; the chart, named elsewhere, completes it.
    Under(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Not,
    And,
    Or,
    /// `ActionMatches{'a', 'b'}` and the like: the function name and its values.
    Function(String, Vec<String>),
    /// `@Request[attr]`: source and attribute.
    Attribute(String, String),
    Operator(String),
    Values(Vec<String>),
}

fn quoted_list(text: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                values.push(value);
            }
            ',' | ' ' | '\t' | '\n' | '\r' => {}
            other => return Err(format!("unexpected `{other}` in a value list")),
        }
    }
    Ok(values)
}

fn take_until(chars: &[char], from: usize, close: char) -> Result<(String, usize), String> {
    let mut quoted = false;
    for (offset, c) in chars[from..].iter().enumerate() {
        match c {
            '\'' => quoted = !quoted,
            c if *c == close && !quoted => {
                return Ok((
                    chars[from..from + offset].iter().collect(),
                    from + offset + 1,
                ));
            }
            _ => {}
        }
    }
    Err(format!("a missing `{close}`"))
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '!' => {
                out.push(Token::Not);
                i += 1;
            }
            '{' => {
                let (inner, next) = take_until(&chars, i + 1, '}')?;
                out.push(Token::Values(quoted_list(&inner)?));
                i = next;
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '\'')
                    .ok_or("an unterminated string")?;
                out.push(Token::Values(vec![
                    chars[i + 1..i + 1 + end].iter().collect(),
                ]));
                i += end + 2;
            }
            '@' => {
                let open = chars[i..]
                    .iter()
                    .position(|c| *c == '[')
                    .ok_or("an attribute without `[`")?;
                let source: String = chars[i + 1..i + open].iter().collect();
                let (attribute, next) = take_until(&chars, i + open + 1, ']')?;
                out.push(Token::Attribute(source, attribute));
                i = next;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '{' | '\'' | '!')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.eq_ignore_ascii_case("and") || word == "&&" {
                    out.push(Token::And);
                } else if word.eq_ignore_ascii_case("or") || word == "||" {
                    out.push(Token::Or);
                } else if chars.get(i) == Some(&'{') {
                    let (inner, next) = take_until(&chars, i + 1, '}')?;
                    out.push(Token::Function(word, quoted_list(&inner)?));
                    i = next;
                } else {
                    out.push(Token::Operator(word));
                }
            }
        }
    }
    Ok(out)
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    ActionMatches(Vec<String>),
    /// A function doctor does not evaluate (`SubOperationMatches`…).
    OtherFunction(String),
    Compare {
        source: String,
        attribute: String,
        operator: String,
        values: Vec<String>,
    },
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut factors = vec![self.factor()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 {
            factors.remove(0)
        } else {
            Expr::And(factors)
        })
    }

    fn factor(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Not) => Ok(Expr::Not(Box::new(self.factor()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a missing `)`".into()),
                }
            }
            Some(Token::Function(name, values)) => {
                Ok(if name.eq_ignore_ascii_case("ActionMatches") {
                    Expr::ActionMatches(values)
                } else {
                    Expr::OtherFunction(name)
                })
            }
            Some(Token::Attribute(source, attribute)) => {
                let Some(Token::Operator(operator)) = self.next() else {
                    return Err(format!("no operator after @{source}[{attribute}]"));
                };
                let Some(Token::Values(values)) = self.next() else {
                    return Err(format!("no value after {operator}"));
                };
                Ok(Expr::Compare {
                    source,
                    attribute,
                    operator,
                    values,
                })
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn parse(text: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err("text after the end of the condition".into());
    }
    Ok(expr)
}

fn compare(operator: &str, values: &[String], repository: &Repository) -> Option<bool> {
    let (exact, ignore_case) = match operator.to_ascii_lowercase().as_str() {
        "stringequals" => (true, false),
        "stringequalsignorecase" => (true, true),
        "stringstartswith" => (false, false),
        "stringstartswithignorecase" => (false, true),
        _ => return None,
    };
    let fold = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let any = |test: &dyn Fn(&str) -> Option<bool>| {
        let results: Vec<Option<bool>> = values.iter().map(|v| test(&fold(v))).collect();
        if results.contains(&Some(true)) {
            Some(true)
        } else if results.iter().all(|r| *r == Some(false)) {
            Some(false)
        } else {
            None
        }
    };
    match repository {
        Repository::Exact(name) => {
            let name = fold(name);
            any(&|v| {
                Some(if exact {
                    name == v
                } else {
                    name.starts_with(v)
                })
            })
        }
        Repository::Under(prefix) => {
            let prefix = fold(prefix);
            any(&|v| {
                if prefix.starts_with(v) && !exact {
                    Some(true)
                } else if v.starts_with(&prefix) || prefix.starts_with(v) {
                    None
                } else {
                    Some(false)
                }
            })
        }
    }
}

fn evaluate(expr: &Expr, operation: &str, repository: Option<&Repository>) -> Option<bool> {
    match expr {
        Expr::Not(inner) => evaluate(inner, operation, repository).map(|b| !b),
        Expr::And(parts) => {
            let results: Vec<Option<bool>> = parts
                .iter()
                .map(|p| evaluate(p, operation, repository))
                .collect();
            if results.contains(&Some(false)) {
                Some(false)
            } else if results.iter().all(|r| *r == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        Expr::Or(parts) => {
            let results: Vec<Option<bool>> = parts
                .iter()
                .map(|p| evaluate(p, operation, repository))
                .collect();
            if results.contains(&Some(true)) {
                Some(true)
            } else if results.iter().all(|r| *r == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        Expr::ActionMatches(patterns) => Some(patterns.iter().any(|p| matches(p, operation))),
        Expr::OtherFunction(_) => None,
        Expr::Compare {
            source,
            attribute,
            operator,
            values,
        } => {
            let about_repository = matches!(source.as_str(), "Request" | "Resource")
                && attribute.eq_ignore_ascii_case(ACR_REPOSITORY);
            if !about_repository {
                return None;
            }
            compare(operator, values, repository?)
        }
    }
}

/// What a condition says of one operation on one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allows,
    Denies,
    /// Why doctor cannot tell.
    Unknown(String),
}

/// Evaluates `condition` (of `version`; only 2.0 is understood) for `operation` on
/// `repository` (`None` when the object names none, or the resource is no registry).
pub fn assess(
    condition: &str,
    version: Option<&str>,
    operation: &str,
    repository: Option<&Repository>,
) -> Outcome {
    if version.is_some_and(|v| v != "2.0") {
        return Outcome::Unknown(format!(
            "condition version {} is not evaluated",
            version.unwrap_or_default()
        ));
    }
    let expr = match parse(condition) {
        Ok(expr) => expr,
        Err(reason) => {
            return Outcome::Unknown(format!("the condition could not be read: {reason}"));
        }
    };
    match evaluate(&expr, operation, repository) {
        Some(true) => Outcome::Allows,
        Some(false) => Outcome::Denies,
        None => Outcome::Unknown(match repository {
            None => "the condition depends on attributes doctor does not know".into(),
            Some(_) => "the condition depends on attributes other than the repository".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "Microsoft.ContainerRegistry/registries/repositories/content/read";
    const METADATA: &str = "Microsoft.ContainerRegistry/registries/repositories/metadata/read";
    const WRITE: &str = "Microsoft.ContainerRegistry/registries/repositories/content/write";

    fn documented(operator: &str, value: &str) -> String {
        format!(
            "(\n (\n  !(ActionMatches{{'{CONTENT}'}})\n  AND\n  !(ActionMatches{{'{METADATA}'}})\n )\n OR\n (\n  @Request[{ACR_REPOSITORY}] {operator} '{value}'\n )\n)"
        )
    }

    fn exact(name: &str) -> Repository {
        Repository::Exact(name.into())
    }

    #[test]
    fn the_documented_repository_condition_allows_only_its_repository() {
        let condition = documented("StringEqualsIgnoreCase", "Manifests/App");
        let on = |repo: &str| assess(&condition, Some("2.0"), CONTENT, Some(&exact(repo)));
        assert_eq!(on("manifests/app"), Outcome::Allows);
        assert_eq!(on("manifests/other"), Outcome::Denies);
        // Operations the condition does not name pass whatever the repository.
        assert_eq!(
            assess(&condition, Some("2.0"), WRITE, Some(&exact("x"))),
            Outcome::Allows
        );
    }

    #[test]
    fn prefixes_match_repositories_below_them() {
        let condition = documented("StringStartsWithIgnoreCase", "team-a/");
        let on = |repo: &Repository| assess(&condition, Some("2.0"), METADATA, Some(repo));
        assert_eq!(on(&exact("team-a/web")), Outcome::Allows);
        assert_eq!(on(&exact("team-b/web")), Outcome::Denies);
        assert_eq!(
            on(&Repository::Under("team-a/charts/".into())),
            Outcome::Allows
        );
        assert!(matches!(
            on(&Repository::Under("team".into())),
            Outcome::Unknown(_)
        ));
        assert_eq!(on(&Repository::Under("other/".into())), Outcome::Denies);
    }

    #[test]
    fn several_repositories_joined_by_or_and_the_resource_form_are_understood() {
        let condition = format!(
            "((!(ActionMatches{{'{CONTENT}'}}) AND !(ActionMatches{{'{METADATA}'}})) OR ((@Request[{ACR_REPOSITORY}] StringEqualsIgnoreCase 'api') OR (@Resource[{ACR_REPOSITORY}] StringEqualsIgnoreCase 'web')))"
        );
        let on = |repo: &str| assess(&condition, None, CONTENT, Some(&exact(repo)));
        assert_eq!(on("web"), Outcome::Allows);
        assert_eq!(on("api"), Outcome::Allows);
        assert_eq!(on("db"), Outcome::Denies);
    }

    #[test]
    fn other_attributes_and_unknown_repositories_are_not_evaluable() {
        let condition = format!(
            "(!(ActionMatches{{'{CONTENT}'}})) OR (@Principal[Microsoft.Directory/CustomSecurityAttributes/Id:team] StringEquals 'a')"
        );
        assert!(matches!(
            assess(&condition, Some("2.0"), CONTENT, Some(&exact("x"))),
            Outcome::Unknown(_)
        ));
        // …unless the known part decides: the action is not the one constrained.
        assert_eq!(
            assess(&condition, Some("2.0"), WRITE, Some(&exact("x"))),
            Outcome::Allows
        );
        let documented = documented("StringEqualsIgnoreCase", "app");
        assert!(matches!(
            assess(&documented, Some("2.0"), CONTENT, None),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            assess(&documented, Some("1.0"), CONTENT, Some(&exact("app"))),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            assess("((broken", Some("2.0"), CONTENT, Some(&exact("app"))),
            Outcome::Unknown(r) if r.contains("could not be read")
        ));
    }
}
