//! Matching federated credentials the way Entra ID does: issuer, subject and audience must be
//! equal byte for byte (matching became case-sensitive in 2025). When none matches, the closest
//! credential is described, field by field, so the report can say exactly what differs.

use super::state::FederatedCredential;

/// What a credential must hold for one ServiceAccount's tokens.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audience: &'a str,
}

/// How one field of the closest credential differs from what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub expected: String,
    pub found: String,
    /// e.g. "a trailing slash is missing", "letter case differs".
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    Match(&'a FederatedCredential),
    /// A credential close to the expected one; each field that differs is described.
    Mismatch {
        credential: &'a FederatedCredential,
        issuer: Option<Difference>,
        subject: Option<Difference>,
        audience: Option<Difference>,
    },
    /// Nothing close. `same_subject` lists credentials for the subject under other issuers
    /// (usually another cluster's).
    Missing {
        same_subject: Vec<&'a FederatedCredential>,
    },
}

pub fn kube_subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

fn parse_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':')
}

/// How `found` differs from `expected` when the two are close enough to be meant as the same
/// value; `None` when they are unrelated.
pub fn closeness(expected: &str, found: &str) -> Option<String> {
    if found.trim() != found && found.trim() == expected {
        return Some("it has surrounding whitespace".into());
    }
    let slash = |s: &str| s.trim_end_matches('/').to_string();
    if slash(expected) == slash(found) {
        return Some(if expected.ends_with('/') {
            "the trailing slash is missing".into()
        } else {
            "it has a trailing slash the issuer does not".into()
        });
    }
    if expected.eq_ignore_ascii_case(found) {
        return Some("letter case differs (matching is case-sensitive)".into());
    }
    if slash(expected).eq_ignore_ascii_case(&slash(found)) {
        return Some("letter case and the trailing slash differ".into());
    }
    if let (Some((ns_e, sa_e)), Some((ns_f, sa_f))) =
        (parse_subject(expected), parse_subject(found))
    {
        if sa_e == sa_f && ns_e != ns_f {
            return Some(format!("namespace is {ns_f}, not {ns_e}"));
        }
        if ns_e == ns_f && sa_e.eq_ignore_ascii_case(sa_f) {
            return Some("letter case differs (matching is case-sensitive)".into());
        }
    }
    None
}

enum Relation {
    Equal,
    Close(String),
    Unrelated,
}

fn relate(expected: &str, found: &str) -> Relation {
    if expected == found {
        Relation::Equal
    } else {
        closeness(expected, found).map_or(Relation::Unrelated, Relation::Close)
    }
}

fn difference(expected: &str, found: &str, how: String) -> Difference {
    Difference {
        expected: expected.to_string(),
        found: found.to_string(),
        how,
    }
}

fn audience_difference(expected: &str, audiences: &[String]) -> Option<Difference> {
    if audiences.iter().any(|a| a == expected) {
        return None;
    }
    let found = audiences.join(", ");
    let how = audiences
        .iter()
        .find_map(|a| closeness(expected, a))
        .unwrap_or_else(|| "it is not the token exchange audience".to_string());
    Some(difference(expected, &found, how))
}

/// Judges the credentials of one identity against what one ServiceAccount's token carries.
pub fn assess<'a>(credentials: &'a [FederatedCredential], expected: &Expected<'_>) -> Verdict<'a> {
    let mut best: Option<(usize, Verdict<'a>)> = None;
    for credential in credentials {
        let issuer = relate(expected.issuer, &credential.issuer);
        let subject = relate(expected.subject, &credential.subject);
        let audience = audience_difference(expected.audience, &credential.audiences);
        let (issuer, subject) = match (issuer, subject) {
            (Relation::Unrelated, _) | (_, Relation::Unrelated) => continue,
            (Relation::Equal, Relation::Equal) if audience.is_none() => {
                return Verdict::Match(credential);
            }
            pair => pair,
        };
        let to_difference = |relation: Relation, expected: &str, found: &str| match relation {
            Relation::Close(how) => Some(difference(expected, found, how)),
            Relation::Equal | Relation::Unrelated => None,
        };
        let issuer = to_difference(issuer, expected.issuer, &credential.issuer);
        let subject = to_difference(subject, expected.subject, &credential.subject);
        let distance = usize::from(issuer.is_some())
            + usize::from(subject.is_some())
            + usize::from(audience.is_some());
        if best.as_ref().is_none_or(|(d, _)| distance < *d) {
            best = Some((
                distance,
                Verdict::Mismatch {
                    credential,
                    issuer,
                    subject,
                    audience,
                },
            ));
        }
    }
    best.map_or_else(
        || Verdict::Missing {
            same_subject: credentials
                .iter()
                .filter(|c| c.subject == expected.subject)
                .collect(),
        },
        |(_, verdict)| verdict,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/";
    const SUBJECT: &str = "system:serviceaccount:flux-system:source-controller";
    const AUDIENCE: &str = "api://AzureADTokenExchange";

    fn fic(name: &str, issuer: &str, subject: &str, audience: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec![audience.into()],
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            subject: SUBJECT,
            audience: AUDIENCE,
        }
    }

    #[test]
    fn an_exact_credential_matches_even_among_close_ones() {
        let creds = vec![
            fic("slash", ISSUER.trim_end_matches('/'), SUBJECT, AUDIENCE),
            fic("exact", ISSUER, SUBJECT, AUDIENCE),
        ];
        assert!(matches!(assess(&creds, &expected()), Verdict::Match(c) if c.name == "exact"));
    }

    #[test]
    fn a_missing_trailing_slash_is_an_issuer_mismatch() {
        let creds = vec![fic("a", ISSUER.trim_end_matches('/'), SUBJECT, AUDIENCE)];
        let Verdict::Mismatch {
            issuer, subject, ..
        } = assess(&creds, &expected())
        else {
            panic!("expected a mismatch");
        };
        assert_eq!(issuer.unwrap().how, "the trailing slash is missing");
        assert!(subject.is_none());
    }

    #[test]
    fn subject_case_and_namespace_are_named() {
        let creds = vec![fic(
            "a",
            ISSUER,
            "system:serviceaccount:flux-system:Source-Controller",
            AUDIENCE,
        )];
        let Verdict::Mismatch { subject, .. } = assess(&creds, &expected()) else {
            panic!("expected a mismatch");
        };
        assert!(subject.unwrap().how.contains("letter case"));
        assert_eq!(
            closeness(SUBJECT, "system:serviceaccount:flux:source-controller").as_deref(),
            Some("namespace is flux, not flux-system")
        );
    }

    #[test]
    fn a_wrong_audience_is_reported_with_what_was_found() {
        let creds = vec![fic("a", ISSUER, SUBJECT, "api://AzureADTokenExchangeX")];
        let Verdict::Mismatch { audience, .. } = assess(&creds, &expected()) else {
            panic!("expected a mismatch");
        };
        let audience = audience.unwrap();
        assert_eq!(audience.found, "api://AzureADTokenExchangeX");
        assert_eq!(audience.expected, AUDIENCE);
    }

    #[test]
    fn another_clusters_credential_is_missing_not_a_mismatch() {
        let creds = vec![
            fic("other", "https://oidc.example.com/other", SUBJECT, AUDIENCE),
            fic(
                "kc",
                ISSUER,
                "system:serviceaccount:flux-system:kustomize-controller",
                AUDIENCE,
            ),
        ];
        let Verdict::Missing { same_subject } = assess(&creds, &expected()) else {
            panic!("expected missing");
        };
        assert_eq!(same_subject.len(), 1);
        assert_eq!(same_subject[0].name, "other");
    }
}
