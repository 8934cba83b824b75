//! Field sets the way server-side apply tracks ownership (structured-merge-diff
//! in the real server): which paths of an object a manager owns, how objects
//! merge by those paths, and the `fieldsV1` encoding of `managedFields`.
//!
//! The fake has no OpenAPI models, so the shape of each path comes from a
//! small table of the built-in kinds' list types instead; custom resources
//! are treated as schema-less (maps merge by key, lists are atomic), as the
//! real server treats fields under `x-kubernetes-preserve-unknown-fields`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A key field of an associative list, with the default the real schema
/// gives it when an item leaves it out.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

/// How the value at a path merges and is owned.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Scalars, and lists or maps replaced and owned as a whole.
    Atomic,
    /// A map merged key by key.
    Fields,
    /// A list whose items are merged by these keys, sorted by name.
    Keyed(&'static [Key]),
    /// A list of scalars merged as a set.
    Set,
}

const BY_NAME: &[Key] = &[Key {
    name: "name",
    default: None,
}];
const BY_UID: &[Key] = &[Key {
    name: "uid",
    default: None,
}];
const BY_TYPE: &[Key] = &[Key {
    name: "type",
    default: None,
}];
const BY_MOUNT_PATH: &[Key] = &[Key {
    name: "mountPath",
    default: None,
}];
const BY_DEVICE_PATH: &[Key] = &[Key {
    name: "devicePath",
    default: None,
}];
const BY_IP: &[Key] = &[Key {
    name: "ip",
    default: None,
}];
const BY_CONTAINER_PORT: &[Key] = &[
    Key {
        name: "containerPort",
        default: None,
    },
    Key {
        name: "protocol",
        default: Some("TCP"),
    },
];
const BY_SERVICE_PORT: &[Key] = &[
    Key {
        name: "port",
        default: None,
    },
    Key {
        name: "protocol",
        default: Some("TCP"),
    },
];
const BY_TOPOLOGY: &[Key] = &[
    Key {
        name: "topologyKey",
        default: None,
    },
    Key {
        name: "whenUnsatisfiable",
        default: None,
    },
];

/// Struct types the real schema marks `structType=atomic` or `mapType=atomic`
/// (label selectors, node selectors, references in env sources), by the name
/// of the field that holds them in the built-in kinds.
const ATOMIC_OBJECTS: &[&str] = &[
    "selector",
    "labelSelector",
    "namespaceSelector",
    "objectSelector",
    "nodeSelector",
    "fieldRef",
    "resourceFieldRef",
    "secretKeyRef",
    "configMapKeyRef",
];

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The schema of one kind, as far as merging and ownership need it.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    pub kind: &'a str,
    pub builtin: bool,
}

impl Schema<'_> {
    /// The shape of `value` at `names`, the field names leading to it (list
    /// items add no name).
    pub fn shape(&self, names: &[String], value: &Value) -> Shape {
        match value {
            Value::Array(_) => self.list_shape(names),
            Value::Object(_) => {
                let atomic = self.builtin
                    && names
                        .last()
                        .is_some_and(|n| ATOMIC_OBJECTS.contains(&n.as_str()));
                if atomic { Shape::Atomic } else { Shape::Fields }
            }
            _ => Shape::Atomic,
        }
    }

    /// Whether `key` is a declared field of the object at `names`: a named
    /// field is owned only through what is under it, while a key of a map
    /// without a schema is owned itself.
    pub fn declares(&self, names: &[String], key: &str) -> bool {
        if self.builtin {
            return true;
        }
        match names.first().map(String::as_str) {
            None => matches!(key, "apiVersion" | "kind" | "metadata"),
            Some("metadata") => names.len() == 1,
            Some(_) => false,
        }
    }

    fn list_shape(&self, names: &[String]) -> Shape {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match names.as_slice() {
            [.., "metadata", "finalizers"] => return Shape::Set,
            [.., "metadata", "ownerReferences"] => return Shape::Keyed(BY_UID),
            _ => {}
        }
        if !self.builtin {
            return Shape::Atomic;
        }
        let pod_spec: &[&str] = match self.kind {
            "Pod" => &["spec"],
            "Deployment" | "ReplicaSet" => &["spec", "template", "spec"],
            _ => &[],
        };
        if !pod_spec.is_empty()
            && let Some(relative) = names.strip_prefix(pod_spec)
        {
            return match relative {
                [list] if CONTAINER_LISTS.contains(list) => Shape::Keyed(BY_NAME),
                [list, field] if CONTAINER_LISTS.contains(list) => match *field {
                    "env" => Shape::Keyed(BY_NAME),
                    "ports" => Shape::Keyed(BY_CONTAINER_PORT),
                    "volumeMounts" => Shape::Keyed(BY_MOUNT_PATH),
                    "volumeDevices" => Shape::Keyed(BY_DEVICE_PATH),
                    _ => Shape::Atomic,
                },
                ["volumes"] => Shape::Keyed(BY_NAME),
                ["hostAliases"] => Shape::Keyed(BY_IP),
                ["topologySpreadConstraints"] => Shape::Keyed(BY_TOPOLOGY),
                _ => Shape::Atomic,
            };
        }
        match (self.kind, names.as_slice()) {
            (_, ["status", "conditions"]) => Shape::Keyed(BY_TYPE),
            ("Service", ["spec", "ports"]) => Shape::Keyed(BY_SERVICE_PORT),
            ("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration", ["webhooks"]) => {
                Shape::Keyed(BY_NAME)
            }
            _ => Shape::Atomic,
        }
    }
}

/// The path element of a list item: `k:{"name":"manager"}` for keyed lists,
/// `v:"value"` for sets. `None` when a key field is missing.
fn item_element(shape: Shape, item: &Value) -> Option<String> {
    match shape {
        Shape::Keyed(keys) => {
            let mut key = Map::new();
            for k in keys {
                let value = match (item.get(k.name), k.default) {
                    (Some(v), _) if !v.is_null() => v.clone(),
                    (_, Some(default)) => Value::String(default.to_owned()),
                    _ => return None,
                };
                key.insert(k.name.to_owned(), value);
            }
            Some(format!("k:{}", Value::Object(key)))
        }
        _ => Some(format!("v:{item}")),
    }
}

/// Path elements of a granular list's items. Items whose key cannot be
/// computed fall back to their index, which is how they would be reported.
fn elements(shape: Shape, items: &[Value]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item_element(shape, item).unwrap_or_else(|| format!("i:{i}")))
        .collect()
}

/// A set of paths, as a tree of path elements (`f:name`, `k:{...}`,
/// `v:...`), each node possibly a member itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Decodes `fieldsV1`; anything that is not an object is an empty set.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(map) = value.as_object() {
            for (element, inner) in map {
                if element == "." {
                    set.member = true;
                } else {
                    let mut child = FieldSet::from_fields_v1(inner);
                    if inner.as_object().is_some_and(Map::is_empty) {
                        child.member = true;
                    }
                    set.children.insert(element.clone(), child);
                }
            }
        }
        set
    }

    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode_children())
    }

    fn encode_children(&self) -> Map<String, Value> {
        self.children
            .iter()
            .map(|(element, child)| {
                let mut encoded = Map::new();
                if child.member && !child.children.is_empty() {
                    encoded.insert(".".to_owned(), Value::Object(Map::new()));
                }
                encoded.extend(child.encode_children());
                (element.clone(), Value::Object(encoded))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.children
                .entry(element.clone())
                .or_default()
                .union(child);
        }
    }

    /// Removes the members of `other`; what is under them stays.
    pub fn difference(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (element, child) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.difference(child);
            }
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut children = BTreeMap::new();
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    children.insert(element.clone(), both);
                }
            }
        }
        FieldSet {
            member: self.member && other.member,
            children,
        }
    }

    /// Drops a top-level field and everything under it.
    pub fn remove_field(&mut self, name: &str) {
        self.children.remove(&format!("f:{name}"));
    }

    /// Unsets the membership of one path, keeping what is under it.
    pub fn unset(&mut self, path: &[&str]) {
        let mut node = self;
        for element in path {
            match node.children.get_mut(*element) {
                Some(child) => node = child,
                None => return,
            }
        }
        node.member = false;
    }

    pub fn prune_empty(&mut self) {
        for child in self.children.values_mut() {
            child.prune_empty();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// Every member path, in element order.
    pub fn members(&self) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        self.collect_members(&mut Vec::new(), &mut found);
        found
    }

    fn collect_members(&self, prefix: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            found.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_members(prefix, found);
            prefix.pop();
        }
    }
}

/// A path as the real server prints it in conflicts:
/// `.spec.template.spec.containers[name="manager"].args`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(fields) => fields.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![key.to_owned()],
            };
            let _ = write!(out, "[{}]", parts.join(","));
        } else if let Some(value) = element.strip_prefix("v:") {
            let _ = write!(out, "[={value}]");
        } else if let Some(index) = element.strip_prefix("i:") {
            let _ = write!(out, "[{index}]");
        }
    }
    out
}

/// Where the walkers are: field names for the schema, elements for sets.
#[derive(Default)]
struct Cursor {
    names: Vec<String>,
    elements: Vec<String>,
}

impl Cursor {
    fn enter_field(&mut self, key: &str) {
        self.names.push(key.to_owned());
        self.elements.push(format!("f:{key}"));
    }

    fn leave_field(&mut self) {
        self.names.pop();
        self.elements.pop();
    }
}

/// The set of fields an applied configuration sets, as the real server's
/// `ToFieldSet`: leaves, atomic values, list items, empty maps, and keys of
/// maps without a schema. A configuration the real server could not type
/// (a keyed list item without its key, duplicate keys) is refused with the
/// message the real server gives.
pub fn applied_set(schema: Schema<'_>, config: &Value) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    collect_applied(schema, config, &mut Cursor::default(), &mut set)?;
    set.prune_empty();
    Ok(set)
}

fn collect_applied(
    schema: Schema<'_>,
    value: &Value,
    at: &mut Cursor,
    set: &mut FieldSet,
) -> Result<(), String> {
    let shape = schema.shape(&at.names, value);
    match (shape, value) {
        (Shape::Fields, Value::Object(map)) => {
            for (key, inner) in map {
                let declared = schema.declares(&at.names, key);
                at.enter_field(key);
                collect_applied(schema, inner, at, set)?;
                let empty = inner.is_null() || inner.as_object().is_some_and(Map::is_empty);
                if empty || !declared {
                    set.insert(&at.elements);
                }
                at.leave_field();
            }
        }
        (Shape::Keyed(_) | Shape::Set, Value::Array(items)) => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let element = item_element(shape, item).ok_or_else(|| {
                    let missing = match shape {
                        Shape::Keyed(keys) => keys
                            .iter()
                            .find(|k| k.default.is_none() && item.get(k.name).is_none_or(Value::is_null))
                            .map_or("", |k| k.name),
                        _ => "",
                    };
                    format!(
                        "{}: element {i}: associative list with keys has an element that omits key field {missing:?} (and doesn't have default value)",
                        display(&at.elements)
                    )
                })?;
                if !seen.insert(element.clone()) {
                    let mut shown = at.elements.clone();
                    shown.push(element.clone());
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        display(&at.elements),
                        display(&shown[shown.len() - 1..])
                    ));
                }
                at.elements.push(element);
                if matches!(shape, Shape::Keyed(_)) {
                    collect_applied(schema, item, at, set)?;
                }
                set.insert(&at.elements);
                at.elements.pop();
            }
        }
        _ => set.insert(&at.elements),
    }
    Ok(())
}

/// What changed between two versions of an object, as the real server's
/// `Compare`: leaves and atomic values modified, and every path added or
/// removed, list items and map keys included.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Modified or added: what a manager taking part in the change claims.
    pub fn changed(&self) -> FieldSet {
        let mut changed = self.modified.clone();
        changed.union(&self.added);
        changed
    }
}

pub fn compare(schema: Schema<'_>, old: &Value, new: &Value) -> Comparison {
    let mut comparison = Comparison::default();
    walk_compare(
        schema,
        Some(old),
        Some(new),
        &mut Cursor::default(),
        &mut comparison,
    );
    comparison.added.prune_empty();
    comparison.modified.prune_empty();
    comparison.removed.prune_empty();
    comparison
}

/// A null stands for an empty map or list when the other side is one, as
/// typed values treat a null collection.
fn children_of(value: Option<&Value>) -> Option<Vec<(String, &Value)>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Object(map)) => Some(map.iter().map(|(k, v)| (format!("f:{k}"), v)).collect()),
        Some(_) => None,
    }
}

fn items_of(shape: Shape, value: Option<&Value>) -> Option<Vec<(String, &Value)>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => Some(elements(shape, items).into_iter().zip(items).collect()),
        Some(_) => None,
    }
}

fn walk_compare(
    schema: Schema<'_>,
    old: Option<&Value>,
    new: Option<&Value>,
    at: &mut Cursor,
    out: &mut Comparison,
) {
    let sample = new
        .filter(|v| !v.is_null())
        .or(old.filter(|v| !v.is_null()));
    let shape = sample.map_or(Shape::Atomic, |v| schema.shape(&at.names, v));
    let children = match shape {
        Shape::Atomic => None,
        Shape::Fields => children_of(old).zip(children_of(new)),
        Shape::Keyed(_) | Shape::Set => items_of(shape, old).zip(items_of(shape, new)),
    };
    let Some((old_children, new_children)) = children else {
        match (old, new) {
            (None, Some(_)) => out.added.insert(&at.elements),
            (Some(_), None) => out.removed.insert(&at.elements),
            (Some(a), Some(b)) if a != b => out.modified.insert(&at.elements),
            _ => {}
        }
        return;
    };
    let old_map: HashMap<&str, &Value> =
        old_children.iter().map(|(e, v)| (e.as_str(), *v)).collect();
    let new_map: HashMap<&str, &Value> =
        new_children.iter().map(|(e, v)| (e.as_str(), *v)).collect();
    let mut order: Vec<&str> = old_children.iter().map(|(e, _)| e.as_str()).collect();
    order.extend(
        new_children
            .iter()
            .map(|(e, _)| e.as_str())
            .filter(|e| !old_map.contains_key(e)),
    );
    let mut visited = HashSet::new();
    for element in order {
        if !visited.insert(element) {
            continue;
        }
        let (old_child, new_child) = (old_map.get(element).copied(), new_map.get(element).copied());
        let field = element
            .strip_prefix("f:")
            .filter(|_| matches!(shape, Shape::Fields));
        match field {
            Some(name) => at.enter_field(name),
            None => at.elements.push(element.to_owned()),
        }
        walk_compare(schema, old_child, new_child, at, out);
        match (old_child, new_child) {
            (None, Some(_)) => out.added.insert(&at.elements),
            (Some(_), None) => out.removed.insert(&at.elements),
            _ => {}
        }
        match field {
            Some(_) => at.leave_field(),
            None => {
                at.elements.pop();
            }
        }
    }
}

/// The live object with the applied configuration merged in, as the real
/// server's `Merge`: maps key by key, keyed lists and sets item by item in
/// the order the real server keeps, atomic values replaced.
pub fn merge(schema: Schema<'_>, live: Option<&Value>, config: &Value) -> Value {
    merge_at(schema, live, config, &mut Vec::new())
}

fn merge_at(
    schema: Schema<'_>,
    live: Option<&Value>,
    config: &Value,
    names: &mut Vec<String>,
) -> Value {
    let shape = schema.shape(names, config);
    match (shape, config) {
        (Shape::Fields, Value::Object(map)) => {
            let mut merged = match live {
                Some(Value::Object(existing)) => existing.clone(),
                _ => Map::new(),
            };
            for (key, inner) in map {
                names.push(key.clone());
                let value = merge_at(schema, merged.get(key), inner, names);
                names.pop();
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Shape::Keyed(_) | Shape::Set, Value::Array(items)) => {
            let existing: &[Value] = match live {
                Some(Value::Array(existing)) => existing,
                _ => &[],
            };
            Value::Array(merge_list(schema, shape, existing, items, names))
        }
        _ => config.clone(),
    }
}

/// The real server's list merge: items of both sides keep their relative
/// order, shared items follow the applied order, live-only items stay where
/// they were.
fn merge_list(
    schema: Schema<'_>,
    shape: Shape,
    live: &[Value],
    config: &[Value],
    names: &mut Vec<String>,
) -> Vec<Value> {
    let lhs = elements(shape, live);
    let rhs = elements(shape, config);
    let observed_lhs: HashMap<&str, usize> = lhs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (e.as_str(), i))
        .collect();
    let observed_rhs: HashMap<&str, usize> = rhs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (e.as_str(), i))
        .collect();
    let mut shared: VecDeque<&str> = rhs
        .iter()
        .map(String::as_str)
        .filter(|e| observed_lhs.contains_key(e))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: HashSet<&str> = HashSet::new();
    let item = |l: Option<usize>, r: usize, names: &mut Vec<String>| match shape {
        Shape::Keyed(_) => merge_at(schema, l.map(|i| &live[i]), &config[r], names),
        _ => config[r].clone(),
    };
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut l, mut r) = (0, 0);
    while l < lhs.len() || r < rhs.len() {
        if l < lhs.len() && r < rhs.len() {
            let element = lhs[l].as_str();
            if element == rhs[r] {
                merged_rhs.insert(element);
                out.push(item(
                    Some(observed_lhs[element]),
                    observed_rhs[element],
                    names,
                ));
                l += 1;
                r += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_rhs.contains_key(element) && next_shared.is_some_and(|n| n != element) {
                l += 1;
                continue;
            }
        }
        if l < lhs.len() {
            let element = lhs[l].as_str();
            if !observed_rhs.contains_key(element) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            if merged_rhs.contains(element) {
                l += 1;
                continue;
            }
        }
        if r < rhs.len() {
            let element = rhs[r].as_str();
            merged_rhs.insert(element);
            out.push(item(
                observed_lhs.get(element).copied(),
                observed_rhs[element],
                names,
            ));
            r += 1;
            if next_shared == Some(element) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Removes what the applying manager owned last time (`last`) and nobody
/// owns now (`held`, the applier's new set included), as the real server's
/// prune: a named field counts as owned when anything under it is, a list
/// item or map key only when it is owned itself.
pub fn prune(schema: Schema<'_>, merged: &mut Value, last: &FieldSet, held: &FieldSet) {
    prune_at(schema, merged, last, held, &mut Vec::new());
}

fn owns(set: Option<&FieldSet>, named: bool) -> bool {
    set.is_some_and(|s| s.member || (named && !s.is_empty()))
}

fn prune_at(
    schema: Schema<'_>,
    value: &mut Value,
    last: &FieldSet,
    held: &FieldSet,
    names: &mut Vec<String>,
) {
    let shape = schema.shape(names, value);
    match (shape, value) {
        (Shape::Fields, Value::Object(map)) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let element = format!("f:{key}");
                let Some(was) = last.child(&element) else {
                    continue;
                };
                let is = held.child(&element);
                let declared = schema.declares(names, &key);
                // The object's identity is never the applier's to remove.
                let protected =
                    names.is_empty() && matches!(key.as_str(), "metadata" | "apiVersion" | "kind");
                if owns(Some(was), declared) && !owns(is, declared) && !protected {
                    map.remove(&key);
                } else if let Some(inner) = map.get_mut(&key) {
                    names.push(key);
                    prune_at(
                        schema,
                        inner,
                        was,
                        is.unwrap_or(&FieldSet::default()),
                        names,
                    );
                    names.pop();
                }
            }
        }
        (Shape::Keyed(_) | Shape::Set, Value::Array(items)) => {
            let elements = elements(shape, items);
            let mut kept = Vec::with_capacity(items.len());
            for (element, mut item) in elements.iter().zip(std::mem::take(items)) {
                match last.child(element) {
                    Some(was) if owns(Some(was), false) && !owns(held.child(element), false) => {}
                    Some(was) => {
                        let empty = FieldSet::default();
                        prune_at(
                            schema,
                            &mut item,
                            was,
                            held.child(element).unwrap_or(&empty),
                            names,
                        );
                        kept.push(item);
                    }
                    None => kept.push(item),
                }
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldSet, Schema, applied_set, display, merge};

    const POD: Schema<'static> = Schema {
        kind: "Pod",
        builtin: true,
    };

    #[test]
    fn fields_v1_round_trips() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {r#"k:{"name":"manager"}"#: {".": {}, "f:args": {}, "f:name": {}}}},
        });
        assert_eq!(FieldSet::from_fields_v1(&encoded).to_fields_v1(), encoded);
    }

    #[test]
    fn ports_are_keyed_by_port_and_protocol_which_defaults_to_tcp() {
        let pod =
            json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]}});
        let set = applied_set(POD, &pod).unwrap();
        let port = r#"k:{"containerPort":8080,"protocol":"TCP"}"#;
        let path: Vec<String> = [
            "f:spec",
            "f:containers",
            r#"k:{"name":"app"}"#,
            "f:ports",
            port,
            "f:containerPort",
        ]
        .map(str::to_owned)
        .to_vec();
        assert!(set.members().contains(&path), "{:?}", set.members());
        assert_eq!(
            display(&path),
            r#".spec.containers[name="app"].ports[containerPort=8080,protocol="TCP"].containerPort"#
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let pod = json!({"spec": {"containers": [{"name": "app"}, {"name": "app"}]}});
        assert_eq!(
            applied_set(POD, &pod).unwrap_err(),
            r#".spec.containers: duplicate entries for key [name="app"]"#
        );
    }

    #[test]
    fn keyed_lists_keep_the_real_merge_order() {
        let env = |names: &[&str]| {
            let items: Vec<_> = names.iter().map(|n| json!({"name": n})).collect();
            json!({"spec": {"containers": [{"name": "app", "env": items}]}})
        };
        let merged = merge(POD, Some(&env(&["a", "b", "c"])), &env(&["c", "a"]));
        assert_eq!(merged, env(&["b", "c", "a"]));
        let merged = merge(POD, Some(&env(&["a", "b"])), &env(&["b", "d"]));
        assert_eq!(merged, env(&["a", "b", "d"]));
    }
}
