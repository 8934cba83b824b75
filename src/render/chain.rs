//! The chain from each Azure-using object to Azure, link by link, with the state of each link
//! taken from the findings about the objects on that link: what `doctor --chain` prints and
//! what JSON carries with each path. Pure: built from the resolved paths and the diagnosis.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::checks::{Diagnosis, Severity, Status};
use crate::model::ObjectRef;
use crate::model::azure_use::WiringMode;
use crate::resolve::{Credential, Resolved};

/// What is known of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Ok,
    /// A finding of this severity is about it.
    Warning,
    Error,
    /// Every check of the link was skipped (nothing to tell, e.g. without Azure credentials).
    Unknown,
}

impl LinkState {
    pub fn mark(self) -> &'static str {
        match self {
            LinkState::Ok => "✔",
            LinkState::Warning => "⚠",
            LinkState::Error => "✗",
            LinkState::Unknown => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub link: String,
    pub state: LinkState,
}

/// One object's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub object: ObjectRef,
    pub links: Vec<Link>,
}

/// The diagnosis indexed once for the chains: the worst finding per check and subject, and the
/// checks that ran (were not skipped). Every link is then a few lookups, not a pass over all
/// findings.
struct Index<'a> {
    worst: HashMap<(&'static str, &'a ObjectRef), Severity>,
    ran: HashSet<&'static str>,
}

impl<'a> Index<'a> {
    fn new(diagnosis: &'a Diagnosis) -> Index<'a> {
        let mut worst: HashMap<(&'static str, &'a ObjectRef), Severity> = HashMap::new();
        for finding in &diagnosis.findings {
            let entry = worst
                .entry((finding.check.id, &finding.subject))
                .or_insert(finding.severity);
            *entry = (*entry).max(finding.severity);
        }
        let ran = diagnosis
            .results
            .iter()
            .filter(|r| !matches!(r.status, Status::Skip(_)))
            .map(|r| r.check.id)
            .collect();
        Index { worst, ran }
    }
}

/// A link's state: the worst finding of `checks` about one of `subjects`, else unknown when
/// none of `checks` ran, else ok.
fn state(index: &Index<'_>, checks: &[&str], subjects: &[ObjectRef]) -> LinkState {
    let worst = checks
        .iter()
        .flat_map(|check| subjects.iter().map(move |subject| (*check, subject)))
        .filter_map(|key| index.worst.get(&key).copied())
        .max();
    match worst {
        Some(Severity::Error) => LinkState::Error,
        Some(_) => LinkState::Warning,
        None if !checks.iter().any(|c| index.ran.contains(c)) => LinkState::Unknown,
        None => LinkState::Ok,
    }
}

const OBJECT_CHECKS: &[&str] = &[
    "AZF040", "AZF041", "AZF042", "AZF043", "AZF044", "AZF049", "AZF050", "AZF051", "AZF053",
];
const CONTROLLER_CHECKS: &[&str] = &["AZF020", "AZF031", "AZF033", "AZF034", "AZF035", "AZF036"];
const SA_CHECKS: &[&str] = &["AZF021", "AZF022", "AZF023", "AZF045", "AZF046", "AZF047"];
const POD_CHECKS: &[&str] = &["AZF024", "AZF025", "AZF026", "AZF037"];
const TOKEN_CHECKS: &[&str] = &["AZF012", "AZF027", "AZF028", "AZF029", "AZF030", "AZF062"];
const FEDERATION_CHECKS: &[&str] = &["AZF063", "AZF064", "AZF065", "AZF066", "AZF067", "AZF068"];
const ROLE_CHECKS: &[&str] = &["AZF069"];
const EXCHANGE_CHECKS: &[&str] = &["AZF071"];

/// The chain of every Azure use, in the order of the resolved paths.
pub fn chains(snapshot: &Resolved, diagnosis: &Diagnosis) -> Vec<Chain> {
    let index = Index::new(diagnosis);
    snapshot
        .uses()
        .map(|u| {
            let object = u.object.object_ref();
            let mut links = vec![Link {
                link: format!("{} {}", object.kind, display(&object)),
                state: state(&index, OBJECT_CHECKS, std::slice::from_ref(&object)),
            }];
            let path = snapshot.controller_path(u.controller);
            let workload = snapshot.controller(u.controller);
            let deployment: Vec<ObjectRef> =
                workload.map(|w| vec![w.object_ref()]).unwrap_or_default();
            let controller = match path {
                Some(p) => format!("{} {} ({})", u.controller, p.running.describe(), p.wiring),
                None => format!("{} (not found)", u.controller),
            };
            links.push(Link {
                link: controller,
                state: state(&index, CONTROLLER_CHECKS, &deployment),
            });
            let service_account = match u.credential {
                Credential::ServiceAccount { name, .. } => Some(ObjectRef::namespaced(
                    "ServiceAccount",
                    &u.object.namespace,
                    name,
                )),
                Credential::Controller if path.is_some_and(|p| p.wiring != WiringMode::None) => {
                    workload.map(|w| {
                        ObjectRef::namespaced("ServiceAccount", &w.namespace, &w.service_account)
                    })
                }
                _ => None,
            };
            match (u.credential, &service_account) {
                (Credential::Secret { name, .. }, _) => links.push(Link {
                    link: format!("Secret {name} (takes the place of any identity)"),
                    state: state(&index, &["AZF041", "AZF050"], std::slice::from_ref(&object)),
                }),
                (Credential::Anonymous, _) => links.push(Link {
                    link: "no credential (anonymous)".to_string(),
                    state: state(&index, &["AZF040"], std::slice::from_ref(&object)),
                }),
                (_, Some(sa)) => {
                    let mut subjects = vec![sa.clone()];
                    subjects.extend(deployment.iter().cloned());
                    links.push(Link {
                        link: format!("ServiceAccount {}", display(sa)),
                        state: state(&index, SA_CHECKS, &subjects),
                    });
                    if matches!(u.credential, Credential::Controller) {
                        // A label put on the ServiceAccount instead is a pod-wiring finding too.
                        links.push(Link {
                            link: "pod wiring".to_string(),
                            state: state(&index, POD_CHECKS, &subjects),
                        });
                    }
                    for (label, checks) in [
                        ("token issuer and audience", TOKEN_CHECKS),
                        ("federated credential", FEDERATION_CHECKS),
                        ("role on the resource", ROLE_CHECKS),
                        ("token exchange", EXCHANGE_CHECKS),
                    ] {
                        links.push(Link {
                            link: label.to_string(),
                            state: state_anywhere(&index, checks, &subjects, &object),
                        });
                    }
                }
                (_, None) => links.push(Link {
                    link: path.map_or_else(
                        || "unknown credential".to_string(),
                        |p| p.credential.describe(),
                    ),
                    state: state(&index, CONTROLLER_CHECKS, &deployment),
                }),
            }
            Chain { object, links }
        })
        .collect()
}

/// Azure-side findings name the ServiceAccount, the controller or the object.
fn state_anywhere(
    index: &Index<'_>,
    checks: &[&str],
    subjects: &[ObjectRef],
    object: &ObjectRef,
) -> LinkState {
    let mut all = subjects.to_vec();
    all.push(object.clone());
    state(index, checks, &all)
}

fn display(object: &ObjectRef) -> String {
    match &object.namespace {
        Some(ns) => format!("{ns}/{}", object.name),
        None => object.name.clone(),
    }
}

/// `OCIRepository apps/podinfo ✔ -> source-controller v1.7.4 (webhook) ✔ -> ...`
pub fn line(chain: &Chain) -> String {
    chain
        .links
        .iter()
        .map(|l| format!("{} {}", l.link, l.state.mark()))
        .collect::<Vec<_>>()
        .join(" -> ")
}
