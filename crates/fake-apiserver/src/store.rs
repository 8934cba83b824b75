//! Stored objects, keyed by group and kind rather than version so that one
//! stored custom resource is served at every version its CRD serves.
//!
//! Every write goes through [`Store::put`], which validates the object against
//! the catalog, fills server-owned metadata and bumps the resource version.
//! Server-side apply ([`Store::apply`]) merges into the stored value and
//! calls `put` with the new `managedFields`; the simulated controllers write
//! through `put` too.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::apply::{self, ApplyRequest, Part, Update};
use super::catalog::{Catalog, ResourceType, split_api_version};
use super::controllers;
use super::status::ApiError;

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

/// What an apply request asks for besides the object.
pub struct ApplyOptions<'a> {
    pub api_version: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub manager: &'a str,
    pub force: bool,
    pub dry_run: bool,
}

pub struct ApplyOutcome {
    /// As stored, or as it would have been for a dry run.
    pub object: Value,
    pub created: bool,
    /// Whether stored state changed: not for a dry run or a no-op apply.
    pub wrote: bool,
}

impl Store {
    /// Stores the seed, CRDs first so that the kinds they declare are known
    /// when the rest is checked, then adds the namespaces the objects live in.
    /// With a `seed_manager`, objects without `managedFields` get one Update
    /// entry of that manager owning all they set, as if it had created them.
    pub fn from_seed(
        objects: Vec<Value>,
        now: Timestamp,
        seed_manager: Option<&str>,
    ) -> Result<Store, String> {
        let mut store = Store {
            catalog: Catalog::new([])?,
            objects: BTreeMap::new(),
            resource_version: 0,
        };
        let (crds, others): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(is_crd);
        for object in crds.into_iter().chain(others) {
            store.put_seed(object, now, seed_manager)?;
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
                store.put_seed(
                    json!({
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": name},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    }),
                    now,
                    seed_manager,
                )?;
            }
        }
        Ok(store)
    }

    fn put_seed(
        &mut self,
        mut object: Value,
        now: Timestamp,
        seed_manager: Option<&str>,
    ) -> Result<(), String> {
        let has_managed_fields = object
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty());
        if let Some(manager) = seed_manager.filter(|_| !has_managed_fields) {
            let (resource, api_version) = self.resolve(&object)?;
            let status_reset = resource
                .version(split_api_version(&api_version).1)
                .is_some_and(|v| v.has_subresource("status"));
            let mut entries = Vec::new();
            Update {
                schema: apply::schema_for(&resource),
                manager,
                api_version: &api_version,
                part: Part::Main { status_reset },
                now: &rfc3339(now),
            }
            .record(&mut entries, None, &object);
            apply::encode(&mut object, entries);
        }
        self.put(object, now)?;
        Ok(())
    }

    /// The resource type of an object and its apiVersion.
    pub fn resolve(&self, object: &Value) -> Result<(ResourceType, String), String> {
        let label = describe(object);
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{label}: apiVersion is missing"))?;
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{label}: kind is missing"))?;
        let (group, version) = split_api_version(api_version);
        let resource = self.catalog.by_kind(group, kind).ok_or_else(|| {
            format!("{label}: no built-in kind or CRD serves {kind} in group {group:?}")
        })?;
        if resource.version(version).is_none() {
            return Err(format!("{label}: {kind} is not served at {api_version}"));
        }
        if !resource.verbs.iter().any(|v| v == "get") {
            return Err(format!(
                "{label}: {kind} is a request the server answers, never an object it stores"
            ));
        }
        Ok((resource.clone(), api_version.to_owned()))
    }

    /// Server-side apply of `config` to the object the URL names. Applying
    /// creates the object when it does not exist; a dry run computes the
    /// result and stores nothing.
    pub fn apply(
        &mut self,
        resource: &ResourceType,
        options: &ApplyOptions<'_>,
        config: Value,
        now: Timestamp,
    ) -> Result<ApplyOutcome, ApiError> {
        let live = self.get(resource, options.namespace, options.name).cloned();
        if live.is_none()
            && let Some(namespace) = options.namespace
            && !self.has_namespace(namespace)
        {
            return Err(ApiError::not_found(
                self.catalog
                    .by_kind("", "Namespace")
                    .expect("Namespace is built in"),
                namespace,
            ));
        }
        let now_text = rfc3339(now);
        let applied = apply::apply(
            &ApplyRequest {
                resource,
                api_version: options.api_version,
                namespace: options.namespace,
                name: options.name,
                manager: options.manager,
                force: options.force,
                now: &now_text,
            },
            live.as_ref(),
            config,
        )?;
        let created = live.is_none();
        let mut object = applied.object;
        if let Some(namespace) = options.namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        if created && resource.group.is_empty() && resource.kind == "Pod" {
            controllers::admit_pod(self, &mut object);
        }
        // What the store refuses (a CRD it could not serve) is what the real
        // server's validation refuses.
        let invalid = |e: String| ApiError::new(422, e);
        if options.dry_run {
            let (_, mut object, _) = self.prepare(object, now).map_err(invalid)?;
            let metadata = object["metadata"].as_object_mut().expect("prepared");
            match live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
            {
                Some(version) => metadata.insert("resourceVersion".to_owned(), version.clone()),
                None => metadata.remove("resourceVersion"),
            };
            return Ok(ApplyOutcome {
                object,
                created,
                wrote: false,
            });
        }
        if !applied.changed {
            return Ok(ApplyOutcome {
                object: live.unwrap_or(object),
                created,
                wrote: false,
            });
        }
        let stored = self.put(object, now).map_err(invalid)?.clone();
        let generation =
            |o: Option<&Value>| o.and_then(|o| o.pointer("/metadata/generation")).cloned();
        let is_deployment = resource.group == "apps" && resource.kind == "Deployment";
        if is_deployment && (created || generation(live.as_ref()) != generation(Some(&stored))) {
            let namespace = options.namespace.unwrap_or("default");
            controllers::roll_out(self, namespace, options.name, applied.template_changed, now)
                .map_err(ApiError::internal)?;
        }
        Ok(ApplyOutcome {
            object: stored,
            created,
            wrote: true,
        })
    }

    fn has_namespace(&self, name: &str) -> bool {
        self.objects.contains_key(&ObjectKey {
            group: String::new(),
            kind: "Namespace".to_owned(),
            namespace: String::new(),
            name: name.to_owned(),
        })
    }

    /// Removes an object, as a controller deleting it would.
    pub fn delete(&mut self, resource: &ResourceType, namespace: Option<&str>, name: &str) {
        let removed = self.objects.remove(&ObjectKey {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.to_owned(),
        });
        if removed.is_some() {
            self.resource_version += 1;
        }
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
    pub fn put(&mut self, object: Value, now: Timestamp) -> Result<&Value, String> {
        let (key, mut object, new_catalog) = self.prepare(object, now)?;
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

    /// Validates an object against the catalog and fills server-owned
    /// metadata, without storing it; a CRD also yields the catalog it makes.
    fn prepare(
        &self,
        mut object: Value,
        now: Timestamp,
    ) -> Result<(ObjectKey, Value, Option<Catalog>), String> {
        let label = describe(&object);
        let (resource, api_version) = self.resolve(&object)?;
        let (group, _) = split_api_version(&api_version);
        let kind = resource.kind.clone();
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
        Ok((key, object, new_catalog))
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

pub fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
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
