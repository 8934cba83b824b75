//! What the tool already owns on a live object, read back from its `managedFields`, so an
//! apply can carry those fields along. Server-side apply removes every field a manager set
//! before and leaves out now; sending only this run's changes would undo earlier runs. Pure:
//! the objects come from the cluster, the decisions are made here.

use serde_json::{Map, Value};

/// The field set (`fieldsV1`) of `manager`'s apply entry on `object`, if it applied before.
pub fn applied_fields<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|entry| {
            entry["manager"] == manager
                && entry["operation"] == "Apply"
                && entry.get("subresource").is_none_or(Value::is_null)
        })?
        .get("fieldsV1")
}

/// The parts of `object` that `fields` names, in the object's own shape: a partial object
/// that, applied, claims exactly those fields with their current values.
pub fn extract(object: &Value, fields: &Value) -> Value {
    let Some(set) = fields.as_object() else {
        return Value::Null;
    };
    if set.keys().all(|k| k == ".") {
        return object.clone();
    }
    match object {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, children) in set {
                let Some(name) = key.strip_prefix("f:") else {
                    continue;
                };
                if let Some(value) = map.get(name) {
                    let part = extract(value, children);
                    if !part.is_null() {
                        out.insert(name.to_string(), part);
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            set.iter()
                .filter_map(|(key, children)| {
                    let item = list_item(items, key)?;
                    let mut part = extract(item, children);
                    // The key fields identify the item; without them it would not merge.
                    if let (Some(Value::Object(keys)), Value::Object(out)) =
                        (item_key(key), &mut part)
                    {
                        for (k, v) in keys {
                            out.entry(k).or_insert(v);
                        }
                    }
                    Some(part)
                })
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

fn item_key(key: &str) -> Option<Value> {
    serde_json::from_str(key.strip_prefix("k:")?).ok()
}

/// The element of a list that a `k:`, `v:` or `i:` key of a field set names.
fn list_item<'a>(items: &'a [Value], key: &str) -> Option<&'a Value> {
    if let Some(Value::Object(fields)) = item_key(key) {
        return items
            .iter()
            .find(|item| fields.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(value) = key.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        return items.iter().find(|item| **item == value);
    }
    items.get(key.strip_prefix("i:")?.parse::<usize>().ok()?)
}

/// The apply body that keeps what the tool owns and adds what it plans: `owned` (from
/// [`extract`]) with `planned` merged over it.
pub fn complete(owned: &Value, planned: &Value) -> Value {
    let mut body = owned.clone();
    if !body.is_object() {
        return planned.clone();
    }
    super::render::merge(&mut body, planned, "");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "source-controller", "namespace": "flux-system",
                "labels": {"app": "source-controller"},
                "managedFields": [
                    {"manager": "kustomize-controller", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kubectl-azflux", "operation": "Apply", "fieldsV1": {
                        "f:spec": {"f:template": {
                            "f:metadata": {"f:labels": {"f:azure.workload.identity/use": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"manager\"}": {
                                ".": {}, "f:name": {},
                                "f:env": {"k:{\"name\":\"AZURE_CLIENT_ID\"}": {".": {}, "f:name": {}, "f:value": {}}},
                                "f:args": {}
                            }}}
                        }}
                    }},
                    {"manager": "kubectl-azflux", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}}
                ]},
            "spec": {"replicas": 1, "template": {
                "metadata": {"labels": {"app": "source-controller", "azure.workload.identity/use": "true"}},
                "spec": {"containers": [
                    {"name": "sidecar", "image": "x"},
                    {"name": "manager", "image": "y", "args": ["--a", "--feature-gates=G=true"],
                     "env": [{"name": "OTHER", "value": "1"}, {"name": "AZURE_CLIENT_ID", "value": "A"}]}
                ]}
            }}
        })
    }

    #[test]
    fn extracts_exactly_the_owned_fields() {
        let object = deployment();
        let fields = applied_fields(&object, "kubectl-azflux").unwrap();
        assert_eq!(
            extract(&object, fields),
            json!({"spec": {"template": {
                "metadata": {"labels": {"azure.workload.identity/use": "true"}},
                "spec": {"containers": [{"name": "manager", "args": ["--a", "--feature-gates=G=true"],
                    "env": [{"name": "AZURE_CLIENT_ID", "value": "A"}]}]}
            }}})
        );
        assert!(applied_fields(&object, "someone-else").is_none());
    }

    #[test]
    fn a_field_someone_removed_is_not_brought_back() {
        let mut object = deployment();
        object["spec"]["template"]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("azure.workload.identity/use");
        let fields = applied_fields(&object, "kubectl-azflux").unwrap().clone();
        let owned = extract(&object, &fields);
        assert!(
            owned
                .pointer("/spec/template/metadata/labels/azure.workload.identity~1use")
                .is_none()
        );
    }

    #[test]
    fn the_plan_is_merged_over_what_is_owned() {
        let object = deployment();
        let owned = extract(&object, applied_fields(&object, "kubectl-azflux").unwrap());
        let planned = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "source-controller", "namespace": "flux-system"},
            "spec": {"template": {"spec": {"containers": [{"name": "manager",
                "env": [{"name": "AZURE_TENANT_ID", "value": "T"}]}]}}}});
        let body = complete(&owned, &planned);
        assert_eq!(body["metadata"]["name"], "source-controller");
        assert_eq!(
            body["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "AZURE_CLIENT_ID", "value": "A"}, {"name": "AZURE_TENANT_ID", "value": "T"}])
        );
    }

    #[test]
    fn set_and_index_keys_name_their_elements() {
        let object = json!({"metadata": {"finalizers": ["a", "b"]}, "list": ["x", "y"]});
        let fields =
            json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}, "f:list": {"i:1": {}}});
        assert_eq!(
            extract(&object, &fields),
            json!({"metadata": {"finalizers": ["b"]}, "list": ["y"]})
        );
    }
}
