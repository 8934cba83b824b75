//! Stored objects, keyed by group and kind rather than version so that one
//! stored custom resource is served at every version its CRD serves.
//!
//! Every write goes through [`Store::put`], which validates the object against
//! the catalog, fills server-owned metadata and bumps the resource version; a
//! later PATCH (server-side apply) handler merges into the stored value and
//! calls `put` again, keeping `managedFields` alongside the rest of metadata.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType, split_api_version};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    group: String,
    kind: String,
    /// Empty for cluster-scoped objects.
    namespace: String,
    name: String,
}

pub struct Store {
    catalog: Catalog,
    objects: BTreeMap<ObjectKey, Value>,
    resource_version: u64,
}

impl Store {
    /// Stores the seed, CRDs first so that the kinds they declare are known
    /// when the rest is checked, then adds the namespaces the objects live in.
    pub fn from_seed(objects: Vec<Value>, now: Timestamp) -> Result<Store, String> {
        let mut store = Store {
            catalog: Catalog::new([])?,
            objects: BTreeMap::new(),
            resource_version: 0,
        };
        let (crds, others): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(is_crd);
        for object in crds.into_iter().chain(others) {
            store.put(object, now)?;
        }
        let mut namespaces: BTreeSet<String> = store
            .objects
            .keys()
            .filter(|k| !k.namespace.is_empty())
            .map(|k| k.namespace.clone())
            .collect();
        // Real clusters cannot lose `default`, and kubeconfigs point at it.
        namespaces.insert("default".to_owned());
        for name in namespaces {
            let key = ObjectKey {
                group: String::new(),
                kind: "Namespace".to_owned(),
                namespace: String::new(),
                name: name.clone(),
            };
            if !store.objects.contains_key(&key) {
                store.put(
                    json!({
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": name},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    }),
                    now,
                )?;
            }
        }
        Ok(store)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The resource version of the latest write, which is what a list
    /// reports as its own.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Creates or replaces an object, as the real server would after
    /// admission: server-owned metadata is filled and the resource version
    /// always moves forward.
    pub fn put(&mut self, mut object: Value, now: Timestamp) -> Result<&Value, String> {
        let label = describe(&object);
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{label}: apiVersion is missing"))?
            .to_owned();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{label}: kind is missing"))?
            .to_owned();
        let (group, version) = split_api_version(&api_version);
        let resource = self.catalog.by_kind(group, &kind).ok_or_else(|| {
            format!("{label}: no built-in kind or CRD serves {kind} in group {group:?}")
        })?;
        if resource.version(version).is_none() {
            return Err(format!("{label}: {kind} is not served at {api_version}"));
        }
        let namespaced = resource.namespaced;
        let tracks_generation = resource.tracks_generation;

        let metadata = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("{label}: metadata is missing"))?;
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{label}: metadata.name is missing"))?
            .to_owned();
        let namespace = if namespaced {
            let namespace = metadata
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_owned();
            metadata.insert("namespace".to_owned(), json!(namespace));
            namespace
        } else {
            metadata.remove("namespace");
            String::new()
        };
        let key = ObjectKey {
            group: group.to_owned(),
            kind: kind.clone(),
            namespace,
            name,
        };
        fill_metadata(metadata, &key, tracks_generation, now);

        let new_catalog = if is_crd(&object) {
            fill_crd_status(&mut object, now);
            let others = self
                .objects
                .iter()
                .filter(|(k, v)| **k != key && is_crd(v))
                .map(|(_, v)| v);
            Some(Catalog::new(others.chain([&object]))?)
        } else {
            None
        };

        self.resource_version += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(
                "resourceVersion".to_owned(),
                json!(self.resource_version.to_string()),
            );
        }
        if let Some(catalog) = new_catalog {
            self.catalog = catalog;
        }
        let slot = self.objects.entry(key).or_insert(Value::Null);
        *slot = object;
        Ok(slot)
    }

    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Value> {
        self.objects.get(&ObjectKey {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.to_owned(),
        })
    }

    /// Objects of one kind in (namespace, name) order, from one namespace or
    /// from all of them.
    pub fn list(&self, resource: &ResourceType, namespace: Option<&str>) -> Vec<&Value> {
        let start = ObjectKey {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == resource.group
                    && k.kind == resource.kind
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, v)| v)
            .collect()
    }
}

/// The object as served at `api_version`. No schema conversion is done: only
/// `apiVersion` changes.
pub fn render(object: &Value, api_version: &str) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".to_owned(), json!(api_version));
    }
    object
}

pub fn rfc3339(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A stable UUID-shaped identifier derived from `seed`, so that runs of the
/// same seed produce the same uids.
pub fn uid_for(seed: &str) -> String {
    let a = fnv1a(seed.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(seed.as_bytes(), 0x8422_2325_cbf2_9ce4);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn is_crd(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

fn describe(object: &Value) -> String {
    let field = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("?")
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(|ns| format!("{ns}/"))
        .unwrap_or_default();
    format!(
        "{} {} {namespace}{}",
        field("/apiVersion"),
        field("/kind"),
        field("/metadata/name")
    )
}

fn fill_metadata(
    metadata: &mut Map<String, Value>,
    key: &ObjectKey,
    tracks_generation: bool,
    now: Timestamp,
) {
    if !metadata.get("uid").is_some_and(Value::is_string) {
        let seed = format!("{}/{}/{}/{}", key.group, key.kind, key.namespace, key.name);
        metadata.insert("uid".to_owned(), json!(uid_for(&seed)));
    }
    if !metadata
        .get("creationTimestamp")
        .is_some_and(Value::is_string)
    {
        metadata.insert("creationTimestamp".to_owned(), json!(rfc3339(now)));
    }
    if tracks_generation && !metadata.get("generation").is_some_and(Value::is_number) {
        metadata.insert("generation".to_owned(), json!(1));
    }
    if key.group.is_empty() && key.kind == "Namespace" {
        // The real server labels every namespace with its own name.
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".to_owned(), json!(key.name));
        }
    }
}

/// A CRD applied to a real cluster is accepted and established within
/// moments; seeds usually omit that status, so it is filled the same way.
fn fill_crd_status(crd: &mut Value, now: Timestamp) {
    if crd.get("status").is_some_and(Value::is_object) {
        return;
    }
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.as_object().cloned().unwrap_or_default();
    if let Some(kind) = names.get("kind").and_then(Value::as_str) {
        accepted
            .entry("singular")
            .or_insert_with(|| json!(kind.to_ascii_lowercase()));
        accepted
            .entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let at = rfc3339(now);
    if let Some(map) = crd.as_object_mut() {
        map.insert(
            "status".to_owned(),
            json!({
                "acceptedNames": accepted,
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "lastTransitionTime": at,
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "lastTransitionTime": at,
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                ],
                "storedVersions": stored,
            }),
        );
    }
}
