//! Server-side apply and the `managedFields` bookkeeping of every write, as
//! the real server's field manager does them.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::catalog::{ResourceType, split_api_version};
use super::fields::{self, FieldSet, Schema};
use super::status::ApiError;

/// Never owned by anyone: the real server strips these from every field
/// set (`stripMeta`), without what is under `metadata`.
const STRIPPED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:clusterName"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:resourceVersion"],
];

/// Metadata only the server writes; an applied value is dropped after the
/// preconditions it expresses are checked.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(&self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this entry is the one `manager` writes with `operation`: an
    /// applier is one entry whatever version it applies at, an updater one
    /// per version, as the real server builds manager identities.
    fn is(
        &self,
        manager: &str,
        operation: &Operation,
        subresource: Option<&str>,
        api_version: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == *operation
            && self.subresource.as_deref() == subresource
            && (*operation == Operation::Apply || self.api_version == api_version)
    }

    /// How conflicts name a manager: `"kubectl-client-side-apply" using apps/v1`.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            let _ = write!(text, " with subresource {subresource:?}");
        }
        if self.operation == Operation::Update {
            let _ = write!(text, " using {}", self.api_version);
        }
        text
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".to_owned(), json!(self.manager));
        entry.insert("operation".to_owned(), json!(self.operation.as_str()));
        entry.insert("apiVersion".to_owned(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".to_owned(), json!(time));
        }
        entry.insert("fieldsType".to_owned(), json!("FieldsV1"));
        entry.insert("fieldsV1".to_owned(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".to_owned(), json!(subresource));
        }
        Value::Object(entry)
    }
}

/// The entries of an object's `managedFields`; entries the real server could
/// not decode either are dropped.
pub fn decode(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
            let operation = match entry.get("operation").and_then(Value::as_str)? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            if entry.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
                return None;
            }
            Some(Entry {
                manager: text("manager")?,
                operation,
                api_version: text("apiVersion").unwrap_or_default(),
                time: text("time"),
                subresource: text("subresource").filter(|s| !s.is_empty()),
                fields: FieldSet::from_fields_v1(entry.get("fieldsV1").unwrap_or(&Value::Null)),
            })
        })
        .collect()
}

/// Writes `entries` into the object in the real server's order: appliers
/// first, then by time, manager, version and subresource.
pub fn encode(object: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| {
        (
            a.operation.as_str(),
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation.as_str(),
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            let encoded: Vec<Value> = entries.iter().map(Entry::encode).collect();
            metadata.insert("managedFields".to_owned(), Value::Array(encoded));
        }
    }
}

pub fn schema_for(resource: &ResourceType) -> Schema<'_> {
    Schema {
        kind: &resource.kind,
        builtin: resource.builtin,
    }
}

/// Which part of the object a write may change, as the real server resets
/// the rest: the main resource never writes `status` where a status
/// subresource exists, and the status subresource never writes `spec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main { status_reset: bool },
    Status,
}

fn filter(set: &mut FieldSet, part: Part) {
    for path in STRIPPED {
        set.unset(path);
    }
    match part {
        Part::Main { status_reset: true } => set.remove_field("status"),
        Part::Status => set.remove_field("spec"),
        Part::Main {
            status_reset: false,
        } => {}
    }
    set.prune_empty();
}

/// What the real server's typed zero value of a built-in kind has: fields
/// of struct type, and lists serialized as null, exist before anything is
/// written, so an update that fills them does not add them.
fn zero_value(kind: &str) -> Value {
    let pod_template = json!({"metadata": {}, "spec": {"containers": null}});
    match kind {
        "Deployment" => json!({
            "metadata": {},
            "spec": {"template": pod_template, "strategy": {}},
            "status": {},
        }),
        "ReplicaSet" => json!({"metadata": {}, "spec": {"template": pod_template}, "status": {}}),
        "Pod" => json!({"metadata": {}, "spec": {"containers": null}, "status": {}}),
        "Namespace" | "Service" | "Node" => json!({"metadata": {}, "spec": {}, "status": {}}),
        "RoleBinding" | "ClusterRoleBinding" => json!({"metadata": {}, "roleRef": {}}),
        "ClusterRole" | "Role" => json!({"metadata": {}, "rules": null}),
        "CustomResourceDefinition" => json!({
            "metadata": {},
            "spec": {"names": {}, "versions": null},
            "status": {},
        }),
        _ => json!({"metadata": {}}),
    }
}

/// `object` as the typed value it decodes to: what the zero value has and
/// the object lacks is there, empty.
fn typed(schema: Schema<'_>, object: &Value) -> Value {
    fn fill(zero: &Value, object: &mut Value) {
        if let (Value::Object(zero), Value::Object(object)) = (zero, object) {
            for (key, inner) in zero {
                match object.get_mut(key) {
                    Some(existing) => fill(inner, existing),
                    None => {
                        object.insert(key.clone(), inner.clone());
                    }
                }
            }
        }
    }
    let mut object = without_managed_fields(object);
    if schema.builtin {
        fill(&zero_value(schema.kind), &mut object);
    }
    object
}

/// Records a write that is not an apply (a create or update by a client or
/// controller) the way the real server does: the writer takes every field it
/// changed, from whoever had it, and everyone loses what it removed. `old`
/// is `None` for a create.
pub struct Update<'a> {
    pub schema: Schema<'a>,
    pub manager: &'a str,
    pub api_version: &'a str,
    pub part: Part,
    pub now: &'a str,
}

impl Update<'_> {
    pub fn record(&self, entries: &mut Vec<Entry>, old: Option<&Value>, new: &Value) {
        let empty = json!({});
        let comparison = fields::compare(
            self.schema,
            &typed(self.schema, old.unwrap_or(&empty)),
            &typed(self.schema, new),
        );
        let mut changed = comparison.changed();
        filter(&mut changed, self.part);
        let mut removed = comparison.removed;
        filter(&mut removed, self.part);
        let subresource = (self.part == Part::Status).then_some("status");
        let identity = |e: &Entry| {
            e.is(
                self.manager,
                &Operation::Update,
                subresource,
                self.api_version,
            )
        };
        for entry in entries.iter_mut().filter(|e| !identity(e)) {
            entry.fields.difference(&changed);
            entry.fields.difference(&removed);
        }
        let position = entries.iter().position(identity);
        let mut own = position
            .map(|i| entries[i].fields.clone())
            .unwrap_or_default();
        own.difference(&removed);
        own.union(&changed);
        let time = if changed.is_empty() {
            position.and_then(|i| entries[i].time.clone())
        } else {
            Some(self.now.to_owned())
        };
        let entry = Entry {
            manager: self.manager.to_owned(),
            operation: Operation::Update,
            api_version: self.api_version.to_owned(),
            time,
            subresource: subresource.map(str::to_owned),
            fields: own,
        };
        match position {
            Some(i) => entries[i] = entry,
            None => entries.push(entry),
        }
        entries.retain(|e| !e.fields.is_empty());
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// One apply request, after the URL and query are understood.
pub struct ApplyRequest<'a> {
    pub resource: &'a ResourceType,
    /// The version the URL addresses.
    pub api_version: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub manager: &'a str,
    pub force: bool,
    pub now: &'a str,
}

/// The object an apply produces, before the store fills server-owned
/// metadata.
pub struct Applied {
    pub object: Value,
    /// The object or its `managedFields` differ from the live ones, or the
    /// object is new: there is something to store.
    pub changed: bool,
    /// `spec.template` differs from the live object's.
    pub template_changed: bool,
}

fn gvk_text(api_version: &str, kind: &str) -> String {
    let (group, version) = split_api_version(api_version);
    format!("{group}/{version}, Kind={kind}")
}

fn object_label(request: &ApplyRequest<'_>, kind: &str) -> String {
    format!(
        "{}/{}; {}",
        request.namespace.unwrap_or_default(),
        request.name,
        gvk_text(request.api_version, kind)
    )
}

fn metadata_text<'v>(object: &'v Value, field: &str) -> &'v str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Merges `config` into `live` (absent for a create) as `request.manager`,
/// answering conflicts and malformed configurations as the real server does.
pub fn apply(
    request: &ApplyRequest<'_>,
    live: Option<&Value>,
    config: Value,
) -> Result<Applied, ApiError> {
    let resource = request.resource;
    let schema = schema_for(resource);
    let part = Part::Main {
        status_reset: resource
            .version(split_api_version(request.api_version).1)
            .is_some_and(|v| v.has_subresource("status")),
    };
    let config = checked_config(request, live, config, part)?;
    let mut applied_set = fields::applied_set(schema, &config).map_err(|e| {
        let label = object_label(request, &resource.kind);
        ApiError::internal(format!(
            "failed to create typed patch object ({label}): {e}"
        ))
    })?;
    filter(&mut applied_set, part);

    let live_value = live.map_or_else(|| json!({}), without_managed_fields);
    let before = live.map(decode).unwrap_or_default();
    let mut entries = before.clone();
    if live.is_some() && entries.is_empty() {
        Update {
            schema,
            manager: BEFORE_FIRST_APPLY,
            api_version: request.api_version,
            part,
            now: request.now,
        }
        .record(&mut entries, None, &live_value);
    }
    let position = entries.iter().position(|e| {
        e.is(
            request.manager,
            &Operation::Apply,
            None,
            request.api_version,
        )
    });

    let mut merged = fields::merge(schema, Some(&live_value), &config);
    if let Some(i) = position {
        let mut held = applied_set.clone();
        for (_, entry) in entries.iter().enumerate().filter(|(j, _)| *j != i) {
            held.union(&entry.fields);
        }
        fields::prune(schema, &mut merged, &entries[i].fields, &held);
    }
    take_ownership(request, &mut entries, position, &live_value, &merged, part)?;

    let object_changed = merged != live_value;
    let entry = Entry {
        manager: request.manager.to_owned(),
        operation: Operation::Apply,
        api_version: request.api_version.to_owned(),
        time: match position {
            Some(i) if !object_changed => entries[i].time.clone(),
            _ => Some(request.now.to_owned()),
        },
        subresource: None,
        fields: applied_set,
    };
    match position {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    entries.retain(|e| !e.fields.is_empty());
    check_identity(request, &merged)?;

    let template_changed = merged.pointer("/spec/template") != live_value.pointer("/spec/template");
    if let Some(live) = live {
        bump_generation(resource, live, &mut merged);
    } else if resource.group.is_empty() && resource.kind == "Pod" {
        // A new pod waits for a scheduler and a kubelet the fake does not have.
        merged["status"] = json!({"phase": "Pending"});
    }
    let changed = live.is_none() || object_changed || entries != before;
    encode(&mut merged, entries);
    Ok(Applied {
        object: merged,
        changed,
        template_changed,
    })
}

/// The applied configuration, checked as the real server checks it before
/// merging, without what the server resets or writes itself.
fn checked_config(
    request: &ApplyRequest<'_>,
    live: Option<&Value>,
    mut config: Value,
    part: Part,
) -> Result<Value, ApiError> {
    let resource = request.resource;
    let Some(map) = config.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(&config)
        )));
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default();
    let (applied_version, applied_kind) = (text("apiVersion"), text("kind"));
    if applied_version != request.api_version || applied_kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}",
            gvk_text(applied_version, applied_kind)
        )));
    }
    if map
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    if let Some(live) = live {
        check_preconditions(resource, request.name, live, map)?;
    }
    if part == (Part::Main { status_reset: true }) {
        map.remove("status");
    }
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
    }
    Ok(config)
}

/// Conflicts with the other managers, or, when forced or free of
/// conflicts, the fields the apply changes or removes taken from them.
fn take_ownership(
    request: &ApplyRequest<'_>,
    entries: &mut [Entry],
    applier: Option<usize>,
    live: &Value,
    merged: &Value,
    part: Part,
) -> Result<(), ApiError> {
    let comparison = fields::compare(schema_for(request.resource), live, merged);
    let mut changed = comparison.changed();
    filter(&mut changed, part);
    let others = || {
        entries
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != applier)
    };
    let conflicts: Vec<(String, Vec<String>)> = others()
        .flat_map(|(_, entry)| {
            let manager = entry.describe();
            entry
                .fields
                .intersection(&changed)
                .members()
                .into_iter()
                .map(move |path| (manager.clone(), path))
        })
        .collect();
    if !conflicts.is_empty() && !request.force {
        return Err(conflict_error(request.resource, request.name, conflicts));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != applier {
            entry.fields.difference(&changed);
            entry.fields.difference(&comparison.removed);
        }
    }
    Ok(())
}

/// The merged object must be the one the URL names.
fn check_identity(request: &ApplyRequest<'_>, merged: &Value) -> Result<(), ApiError> {
    let name = metadata_text(merged, "name");
    if name != request.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            request.name
        )));
    }
    let namespace = metadata_text(merged, "namespace");
    match request.namespace {
        Some(expected) if !namespace.is_empty() && namespace != expected => {
            Err(ApiError::bad_request(format!(
                "the namespace of the object ({namespace}) does not match the namespace on the URL ({expected})"
            )))
        }
        _ => Ok(()),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null | Value::Object(_) => "object",
    }
}

/// `metadata.resourceVersion` and `metadata.uid` in an applied object are
/// preconditions on the live one, as in any write.
fn check_preconditions(
    resource: &ResourceType,
    name: &str,
    live: &Value,
    config: &Map<String, Value>,
) -> Result<(), ApiError> {
    let applied = |field: &str| {
        config
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (applied_uid, live_uid) = (applied("uid"), metadata_text(live, "uid"));
    if !applied_uid.is_empty() && applied_uid != live_uid {
        return Err(ApiError::conflict(
            resource,
            name,
            format!(
                "Precondition failed: UID in precondition: {applied_uid}, UID in object meta: {live_uid}"
            ),
        ));
    }
    let applied_version = applied("resourceVersion");
    if !applied_version.is_empty() && applied_version != metadata_text(live, "resourceVersion") {
        return Err(ApiError::conflict(
            resource,
            name,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified_name()
            ),
        ));
    }
    Ok(())
}

/// The real server's apply conflict: one line for one conflict, otherwise
/// the paths grouped by manager.
fn conflict_error(
    resource: &ResourceType,
    name: &str,
    mut conflicts: Vec<(String, Vec<String>)>,
) -> ApiError {
    conflicts.sort();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {manager}"),
                "field": fields::display(path),
            })
        })
        .collect();
    let message = if let [(manager, path)] = conflicts.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            fields::display(path)
        )
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for (manager, path) in &conflicts {
            if current != Some(manager.as_str()) {
                lines.push(format!("conflicts with {manager}:"));
                current = Some(manager);
            }
            lines.push(format!("- {}", fields::display(path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut details = Map::new();
    details.insert("name".to_owned(), json!(name));
    if !resource.group.is_empty() {
        details.insert("group".to_owned(), json!(resource.group));
    }
    details.insert("kind".to_owned(), json!(resource.plural));
    details.insert("causes".to_owned(), Value::Array(causes));
    ApiError {
        details: Value::Object(details),
        ..ApiError::new(409, message)
    }
}

/// The real strategies bump `metadata.generation` when anything outside
/// metadata and status changes; Deployments also on annotation changes,
/// because those are copied to their ReplicaSets.
pub fn bump_generation(resource: &ResourceType, live: &Value, merged: &mut Value) {
    if !resource.tracks_generation {
        return;
    }
    let body = |object: &Value| {
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        object
    };
    let annotations_count = resource.group == "apps" && resource.kind == "Deployment";
    let annotations_changed = annotations_count
        && live.pointer("/metadata/annotations") != merged.pointer("/metadata/annotations");
    if body(live) != body(merged) || annotations_changed {
        let generation = live
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        merged["metadata"]["generation"] = json!(generation + 1);
    }
}
