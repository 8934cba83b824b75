//! OpenAPI v3 documents (`/openapi/v3` and one per group version), paths
//! and operations only.
//!
//! kubectl reads them before it writes, to learn whether the server checks
//! fields itself (`fieldValidation` on the PATCH operation); when it does,
//! kubectl leaves validation to the server. The documents list the
//! operations the fake implements (GET of objects and lists, PATCH by
//! server-side apply) with the real operation ids and parameters, and no
//! schemas: what needs schemas (`kubectl explain`, client-side validation)
//! finds none.

use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType};
use super::store::fnv1a;

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn documents(catalog: &Catalog) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for group in catalog.groups() {
        for version in &group.versions {
            let path = if group.name.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{}/{version}", group.name)
            };
            found.push((path, group.name.clone(), version.clone()));
        }
    }
    found
}

/// `GET /openapi/v3`: where each group version's document is. The hash
/// changes with the document, so clients may cache by URL.
pub fn root(catalog: &Catalog) -> Value {
    let paths: Map<String, Value> = documents(catalog)
        .into_iter()
        .map(|(path, group, version)| {
            let hash = fnv1a(
                document(catalog, &group, &version).to_string().as_bytes(),
                FNV_BASIS,
            );
            let url = format!("/openapi/v3/{path}?hash={hash:016X}");
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({ "paths": paths })
}

/// `GET /openapi/v3/{path}` for a served group version.
pub fn group_version_document(catalog: &Catalog, path: &str) -> Option<Value> {
    documents(catalog)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, group, version)| document(catalog, &group, &version))
}

/// `apps` → `Apps`, `source.toolkit.fluxcd.io` → `SourceToolkitFluxcdIo`,
/// the core group → `Core`, as operation ids spell groups.
fn camel_group(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_owned();
    }
    group.split(['.', '-']).map(capitalized).collect()
}

fn query(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": true}})
}

fn document(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for (resource, _) in catalog.resources_at(group, version) {
        add_paths(&mut paths, resource, group, version);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.2"},
        "paths": paths,
    })
}

fn add_paths(paths: &mut Map<String, Value>, resource: &ResourceType, group: &str, version: &str) {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let scope = if resource.namespaced {
        "Namespaced"
    } else {
        ""
    };
    let collection = if resource.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{prefix}/{}", resource.plural)
    };
    let id = format!(
        "{}{}{scope}{}",
        camel_group(group),
        capitalized(version),
        resource.kind
    );
    let gvk = json!({"group": group, "version": version, "kind": resource.kind});
    let mut path_parameters = vec![
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if resource.namespaced {
        path_parameters.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": {
                "description": format!("read the specified {}", resource.kind),
                "operationId": format!("read{id}"),
                "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
            },
            "patch": {
                "description": format!("partially update the specified {}", resource.kind),
                "operationId": format!("patch{id}"),
                "parameters": [
                    query("dryRun", "string"),
                    query("fieldManager", "string"),
                    query("fieldValidation", "string"),
                    query("force", "boolean"),
                ],
                "requestBody": {
                    "content": {"application/apply-patch+yaml": {"schema": {"type": "object"}}},
                    "required": true,
                },
                "responses": {
                    "200": {"description": "OK"},
                    "201": {"description": "Created"},
                    "401": {"description": "Unauthorized"},
                },
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
            "parameters": path_parameters,
        }),
    );
    let mut list_parameters: Vec<Value> = path_parameters.into_iter().skip(1).collect();
    list_parameters.extend(
        ["continue", "fieldSelector", "labelSelector"]
            .iter()
            .map(|name| query(name, "string")),
    );
    list_parameters.push(query("limit", "integer"));
    paths.insert(
        collection,
        json!({
            "get": {
                "description": format!("list or watch objects of kind {}", resource.kind),
                "operationId": format!("list{id}"),
                "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
                "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": gvk,
            },
            "parameters": list_parameters,
        }),
    );
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
