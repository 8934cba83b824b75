//! The resource types the fake serves: the built-in kinds of the release it
//! announces (`builtins.rs`) plus whatever the stored CustomResourceDefinitions
//! declare.

use std::cmp::Ordering;

use serde_json::Value;

use super::builtins::{self, BUILTIN_GROUPS, BUILTINS};

/// What a CRD's kind advertises; writes other than server-side apply and
/// TokenRequest answer 405 here, but the verbs stay because clients such as
/// kubectl decide from them what a kind can do.
const CRD_VERBS: &[&str] = builtins::ALL;
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

#[derive(Clone, Debug)]
pub struct Subresource {
    pub name: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ServedVersion {
    pub name: String,
    pub subresources: Vec<Subresource>,
}

impl ServedVersion {
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Served versions in the order the real server prefers them.
    pub versions: Vec<ServedVersion>,
    /// Built-in kinds whose objects carry `metadata.generation`; the real
    /// server sets it only where a spec change is tracked.
    pub tracks_generation: bool,
    /// Built in rather than declared by a CRD, which decides how server-side
    /// apply merges its lists.
    pub builtin: bool,
}

impl ResourceType {
    pub fn version(&self, version: &str) -> Option<&ServedVersion> {
        self.versions.iter().find(|v| v.name == version)
    }

    pub fn api_version(&self, version: &str) -> String {
        group_version(&self.group, version)
    }

    /// `deployments.apps`, or `serviceaccounts` for the core group, as the
    /// real server names a resource in its error messages.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits `apps/v1` into `("apps", "v1")` and `v1` into `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

pub struct GroupSummary {
    pub name: String,
    /// Preferred first.
    pub versions: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    resources: Vec<ResourceType>,
}

impl Catalog {
    /// The built-in kinds plus one kind per CRD.
    pub fn new<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Result<Catalog, String> {
        let mut resources = builtin_resources();
        for crd in crds {
            let resource = resource_from_crd(crd)?;
            if BUILTIN_GROUPS.contains(&resource.group.as_str()) {
                return Err(format!(
                    "CRD {}: group {:?} is built in",
                    resource.qualified_name(),
                    resource.group
                ));
            }
            resources.retain(|r| !(r.group == resource.group && r.plural == resource.plural));
            resources.push(resource);
        }
        Ok(Catalog { resources })
    }

    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural && r.version(version).is_some())
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
    }

    /// Resources served at `group/version`, sorted by plural as the real
    /// server lists them.
    pub fn resources_at(&self, group: &str, version: &str) -> Vec<(&ResourceType, &ServedVersion)> {
        let mut found: Vec<_> = self
            .resources
            .iter()
            .filter(|r| r.group == group)
            .filter_map(|r| r.version(version).map(|v| (r, v)))
            .collect();
        found.sort_by(|a, b| a.0.plural.cmp(&b.0.plural));
        found
    }

    /// Every group with the versions any of its kinds serve. The core group
    /// comes first, then the built-in groups, then CRD groups by name.
    pub fn groups(&self) -> Vec<GroupSummary> {
        let mut names: Vec<&str> = Vec::new();
        for name in BUILTIN_GROUPS {
            if self.resources.iter().any(|r| r.group == *name) {
                names.push(name);
            }
        }
        let mut custom: Vec<&str> = self
            .resources
            .iter()
            .map(|r| r.group.as_str())
            .filter(|g| !BUILTIN_GROUPS.contains(g))
            .collect();
        custom.sort_unstable();
        custom.dedup();
        names.extend(custom);
        names
            .into_iter()
            .map(|name| {
                let mut versions: Vec<String> = Vec::new();
                for resource in self.resources.iter().filter(|r| r.group == name) {
                    for version in &resource.versions {
                        if !versions.contains(&version.name) {
                            versions.push(version.name.clone());
                        }
                    }
                }
                versions.sort_by(|a, b| compare_kube_aware(a, b));
                GroupSummary {
                    name: name.to_owned(),
                    versions,
                }
            })
            .collect()
    }
}

/// The real server's version priority: GA before beta before alpha, higher
/// major first, then higher minor; anything else last, alphabetically.
pub fn compare_kube_aware(a: &str, b: &str) -> Ordering {
    match (parse_kube_version(a), parse_kube_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(stability, major, minor)` where stability is 2 for GA, 1 for beta and 0
/// for alpha, so that a greater tuple is a more preferred version.
fn parse_kube_version(version: &str) -> Option<(u8, u64, u64)> {
    let rest = version.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u64 = rest[..digits].parse().ok()?;
    if major == 0 {
        return None;
    }
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(minor) = tail.strip_prefix("beta") {
        (1, minor)
    } else if let Some(minor) = tail.strip_prefix("alpha") {
        (0, minor)
    } else {
        return None;
    };
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stability, major, minor.parse().ok()?))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn status_subresource(group: &str, version: &str, kind: &str) -> Subresource {
    Subresource {
        name: "status".to_owned(),
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        verbs: strings(STATUS_VERBS),
    }
}

/// One resource type per built-in kind, its versions in `BUILTINS` order.
fn builtin_resources() -> Vec<ResourceType> {
    let mut resources: Vec<ResourceType> = Vec::new();
    for b in BUILTINS {
        let subresources = b
            .subresources
            .iter()
            .map(|sub| {
                let (name, (group, version, kind), verbs) =
                    builtins::subresource(*sub, b.group, b.version, b.kind);
                Subresource {
                    name: name.to_owned(),
                    group: group.to_owned(),
                    version: version.to_owned(),
                    kind: kind.to_owned(),
                    verbs: strings(verbs),
                }
            })
            .collect();
        let served = ServedVersion {
            name: b.version.to_owned(),
            subresources,
        };
        if let Some(known) = resources
            .iter_mut()
            .find(|r| r.group == b.group && r.plural == b.plural)
        {
            known.versions.push(served);
            continue;
        }
        resources.push(ResourceType {
            group: b.group.to_owned(),
            kind: b.kind.to_owned(),
            plural: b.plural.to_owned(),
            singular: b.kind.to_ascii_lowercase(),
            namespaced: b.namespaced,
            short_names: strings(b.short_names),
            categories: strings(b.categories),
            verbs: strings(b.verbs),
            versions: vec![served],
            tracks_generation: b.tracks_generation,
            builtin: true,
        });
    }
    resources
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn string_list(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn resource_from_crd(crd: &Value) -> Result<ResourceType, String> {
    let crd_name = str_at(crd, "/metadata/name").unwrap_or("<unnamed>");
    let field = |pointer: &str| {
        str_at(crd, pointer)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("CRD {crd_name}: {pointer} is missing"))
    };
    let group = field("/spec/group")?;
    let kind = field("/spec/names/kind")?;
    let plural = field("/spec/names/plural")?;
    let singular = str_at(crd, "/spec/names/singular")
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned);
    let namespaced = match field("/spec/scope")? {
        "Namespaced" => true,
        "Cluster" => false,
        other => return Err(format!("CRD {crd_name}: unknown scope {other:?}")),
    };
    let declared = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("CRD {crd_name}: /spec/versions is missing"))?;
    let mut versions = Vec::new();
    for version in declared {
        let name = str_at(version, "/name")
            .ok_or_else(|| format!("CRD {crd_name}: a version has no name"))?;
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if version.pointer("/subresources/status").is_some() {
            subresources.push(status_subresource(group, name, kind));
        }
        versions.push(ServedVersion {
            name: name.to_owned(),
            subresources,
        });
    }
    versions.sort_by(|a, b| compare_kube_aware(&a.name, &b.name));
    Ok(ResourceType {
        group: group.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
        singular,
        namespaced,
        short_names: string_list(crd, "/spec/names/shortNames"),
        categories: string_list(crd, "/spec/names/categories"),
        verbs: strings(CRD_VERBS),
        versions,
        tracks_generation: true,
        builtin: false,
    })
}

#[cfg(test)]
mod tests {
    use super::compare_kube_aware;

    #[test]
    fn versions_sort_like_the_real_server() {
        let mut versions = vec![
            "v1beta1",
            "foo1",
            "v2",
            "v1",
            "v10beta3",
            "v11beta2",
            "v12alpha1",
            "v1alpha1",
        ];
        versions.sort_by(|a, b| compare_kube_aware(a, b));
        assert_eq!(
            versions,
            vec![
                "v2",
                "v1",
                "v11beta2",
                "v10beta3",
                "v1beta1",
                "v12alpha1",
                "v1alpha1",
                "foo1"
            ]
        );
    }
}
