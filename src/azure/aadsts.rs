//! Entra ID error codes (AADSTS) seen when Flux exchanges a Kubernetes token, or doctor logs
//! in, with their cause and fix. The probe keys them on the number in `error_codes[0]`, never on
//! the message text, which Entra words differently across versions and languages (doctor's own
//! login goes through azure_identity, which sometimes hands over only the text; see
//! `credential`).
#![expect(
    clippy::unreadable_literal,
    reason = "AADSTS codes are written as Entra ID prints them, to be searched for"
)]

/// Which claims of the presented token the error is about, so the report can put what was
/// presented next to what the federated credentials expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    Issuer,
    Subject,
    Audience,
    /// Issuer, subject and audience together.
    Match,
    /// Letter case of issuer or subject.
    Case,
    Lifetime,
    ClientId,
    Tenant,
    IssuerKeys,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub struct Aadsts {
    pub code: u64,
    pub cause: &'static str,
    pub fix: &'static str,
    pub about: About,
}

const TABLE: &[Aadsts] = &[
    Aadsts {
        code: 70021,
        cause: "no federated credential of the identity matches the token's issuer, subject and audience together (or one was created in the last few minutes: Entra ID takes several minutes to honour a new credential)",
        fix: "create a federated credential whose issuer, subject and audience equal the token's claims byte for byte; if it was just created, wait a few minutes and retry",
        about: About::Match,
    },
    Aadsts {
        code: 700211,
        cause: "no federated credential of the identity has the token's issuer (a missing or extra trailing slash, or another cluster's issuer)",
        fix: "set the credential's issuer to the token's `iss` exactly, trailing slash included",
        about: About::Issuer,
    },
    Aadsts {
        code: 700212,
        cause: "no federated credential of the identity has the token's audience",
        fix: "use `api://AzureADTokenExchange` as the credential's audience and the projected token's audience",
        about: About::Audience,
    },
    Aadsts {
        code: 700213,
        cause: "no federated credential of the identity has the token's subject (`system:serviceaccount:NAMESPACE:NAME`)",
        fix: "create a federated credential for this ServiceAccount's subject, or point the ServiceAccount at the identity that has one",
        about: About::Subject,
    },
    Aadsts {
        code: 7002138,
        cause: "a federated credential matches only when letter case is ignored; Entra ID compares issuer and subject case-sensitively",
        fix: "recreate the credential with the issuer and subject in the exact case of the token's claims",
        about: About::Case,
    },
    Aadsts {
        code: 700016,
        cause: "no application or managed identity with this client ID exists in the tenant (a wrong client ID, a deleted identity, or another tenant)",
        fix: "annotate the ServiceAccount with the identity's client ID (`az identity show --query clientId`) and the tenant it lives in",
        about: About::ClientId,
    },
    Aadsts {
        code: 700024,
        cause: "the token is expired or not yet valid (a stale token file, or clock skew)",
        fix: "restart the pod so it reads a fresh projected token, and check the node's clock",
        about: About::Lifetime,
    },
    Aadsts {
        code: 90002,
        cause: "the tenant does not exist, or belongs to another cloud than the authority host",
        fix: "set the tenant ID annotation (or AZURE_TENANT_ID) to the identity's tenant, and the authority host to its cloud",
        about: About::Tenant,
    },
    Aadsts {
        code: 900023,
        cause: "the tenant ID is not a valid tenant identifier",
        fix: "set the tenant ID to the directory's GUID",
        about: About::Tenant,
    },
    Aadsts {
        code: 90061,
        cause: "Entra ID could not fetch the issuer's discovery document or keys (`/.well-known/openid-configuration`, `jwks_uri`)",
        fix: "serve the issuer's discovery document and JWKS publicly over https (on AKS: `az aks update --enable-oidc-issuer`)",
        about: About::IssuerKeys,
    },
    Aadsts {
        code: 700027,
        cause: "the token's signature does not verify with the keys the issuer publishes (rotated or stale JWKS)",
        fix: "publish the API server's current service-account signing keys at the issuer's `jwks_uri`",
        about: About::IssuerKeys,
    },
    Aadsts {
        code: 50027,
        cause: "the assertion is not a valid JWT",
        fix: "make sure the token file holds the projected service-account token and nothing else",
        about: About::Other,
    },
    Aadsts {
        code: 500011,
        cause: "the resource of the requested scope is not known in this tenant (a scope from another cloud)",
        fix: "use the authority host and Resource Manager endpoint of the same cloud (`--cloud`)",
        about: About::Other,
    },
    Aadsts {
        code: 7000215,
        cause: "the client secret is wrong (often the secret's ID instead of its value)",
        fix: "use the secret's value in AZURE_CLIENT_SECRET, or log in with `az login`",
        about: About::Other,
    },
    Aadsts {
        code: 7000222,
        cause: "the client secret has expired",
        fix: "create a new client secret, or log in with `az login`",
        about: About::Other,
    },
    Aadsts {
        code: 50005,
        cause: "a Conditional Access policy blocks the login from this device or platform",
        fix: "run from a compliant device, or use a service principal the policy allows",
        about: About::Other,
    },
    Aadsts {
        code: 53003,
        cause: "access was blocked by a Conditional Access policy",
        fix: "run from a location or device the policy allows, or use an identity it exempts",
        about: About::Other,
    },
];

pub fn lookup(code: u64) -> Option<&'static Aadsts> {
    TABLE.iter().find(|a| a.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_from_the_issue_are_explained() {
        for code in [70021, 700211, 700213, 7002138, 700016, 700024, 90002] {
            assert!(lookup(code).is_some(), "AADSTS{code}");
        }
        assert!(lookup(1).is_none());
        let mut codes: Vec<u64> = TABLE.iter().map(|a| a.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len(), "each code once");
    }

    #[test]
    fn the_readme_troubleshooting_table_covers_every_code() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        for a in TABLE {
            assert!(
                readme.contains(&format!("| AADSTS{} |", a.code)),
                "README lacks a row for AADSTS{}",
                a.code
            );
        }
    }
}
