//! Discovery documents, legacy (`/api`, `/apis`, `/apis/{g}/{v}`) and
//! aggregated (`apidiscovery.k8s.io/v2`).

use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType, ServedVersion, Subresource, group_version};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.2",
        "gitCommit": "a57b6f7709f6c2722b92f07b8b4c48210a51fc40",
        "gitTreeState": "clean",
        "buildDate": "2025-06-17T18:34:53Z",
        "goVersion": "go1.24.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /`, the list of paths the server answers.
pub fn root_paths(catalog: &Catalog) -> Value {
    let mut paths = vec![
        "/.well-known/openid-configuration".to_owned(),
        "/api".to_owned(),
        "/apis".to_owned(),
        "/healthz".to_owned(),
        "/livez".to_owned(),
        "/openapi/v3".to_owned(),
        "/openid/v1/jwks".to_owned(),
        "/readyz".to_owned(),
        "/version".to_owned(),
    ];
    for group in catalog.groups() {
        if group.name.is_empty() {
            paths.extend(group.versions.iter().map(|v| format!("/api/{v}")));
        } else {
            paths.push(format!("/apis/{}", group.name));
            paths.extend(
                group
                    .versions
                    .iter()
                    .map(|v| format!("/apis/{}/{v}", group.name)),
            );
        }
    }
    paths.sort();
    json!({ "paths": paths })
}

/// `GET /api` in the legacy shape.
pub fn api_versions(catalog: &Catalog, server_address: &str) -> Value {
    let versions = catalog
        .groups()
        .into_iter()
        .find(|g| g.name.is_empty())
        .map(|g| g.versions)
        .unwrap_or_default();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

fn group_document(name: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(name, v), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /apis` in the legacy shape.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(|g| group_document(&g.name, &g.versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group(catalog: &Catalog, name: &str) -> Option<Value> {
    let group = catalog
        .groups()
        .into_iter()
        .find(|g| !g.name.is_empty() && g.name == name)?;
    let mut document = group_document(&group.name, &group.versions);
    if let Some(map) = document.as_object_mut() {
        map.insert("kind".to_owned(), json!("APIGroup"));
        map.insert("apiVersion".to_owned(), json!("v1"));
    }
    Some(document)
}

fn insert_list(map: &mut Map<String, Value>, key: &str, items: &[String]) {
    if !items.is_empty() {
        map.insert(key.to_owned(), json!(items));
    }
}

fn legacy_resource(resource: &ResourceType) -> Value {
    let mut map = Map::new();
    map.insert("name".to_owned(), json!(resource.plural));
    map.insert("singularName".to_owned(), json!(resource.singular));
    map.insert("namespaced".to_owned(), json!(resource.namespaced));
    map.insert("kind".to_owned(), json!(resource.kind));
    map.insert("verbs".to_owned(), json!(resource.verbs));
    insert_list(&mut map, "shortNames", &resource.short_names);
    insert_list(&mut map, "categories", &resource.categories);
    Value::Object(map)
}

fn legacy_subresource(resource: &ResourceType, version: &str, sub: &Subresource) -> Value {
    let mut map = Map::new();
    map.insert(
        "name".to_owned(),
        json!(format!("{}/{}", resource.plural, sub.name)),
    );
    map.insert("singularName".to_owned(), json!(""));
    map.insert("namespaced".to_owned(), json!(resource.namespaced));
    if sub.group != resource.group || sub.version != version {
        map.insert("group".to_owned(), json!(sub.group));
        map.insert("version".to_owned(), json!(sub.version));
    }
    map.insert("kind".to_owned(), json!(sub.kind));
    map.insert("verbs".to_owned(), json!(sub.verbs));
    Value::Object(map)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`; `None` when nothing is
/// served there.
pub fn api_resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let served = catalog.resources_at(group, version);
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for (resource, served_version) in served {
        resources.push(legacy_resource(resource));
        resources.extend(
            served_version
                .subresources
                .iter()
                .map(|sub| legacy_subresource(resource, version, sub)),
        );
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

fn aggregated_resource(resource: &ResourceType, version: &ServedVersion) -> Value {
    let mut map = Map::new();
    map.insert("resource".to_owned(), json!(resource.plural));
    map.insert(
        "responseKind".to_owned(),
        json!({"group": resource.group, "version": version.name, "kind": resource.kind}),
    );
    map.insert(
        "scope".to_owned(),
        json!(if resource.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    map.insert("singularResource".to_owned(), json!(resource.singular));
    map.insert("verbs".to_owned(), json!(resource.verbs));
    insert_list(&mut map, "shortNames", &resource.short_names);
    insert_list(&mut map, "categories", &resource.categories);
    if !version.subresources.is_empty() {
        let subresources: Vec<Value> = version
            .subresources
            .iter()
            .map(|sub| {
                json!({
                    "subresource": sub.name,
                    "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                    "verbs": sub.verbs,
                })
            })
            .collect();
        map.insert("subresources".to_owned(), json!(subresources));
    }
    Value::Object(map)
}

/// `GET /api` (`core` true) or `GET /apis` as an `APIGroupDiscoveryList`.
pub fn aggregated(catalog: &Catalog, core: bool) -> Value {
    let items: Vec<Value> = catalog
        .groups()
        .into_iter()
        .filter(|g| g.name.is_empty() == core)
        .map(|group| {
            let versions: Vec<Value> = group
                .versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = catalog
                        .resources_at(&group.name, version)
                        .into_iter()
                        .map(|(resource, served)| aggregated_resource(resource, served))
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.name.is_empty() {
                json!({})
            } else {
                json!({"name": group.name})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
