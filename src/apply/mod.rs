//! Appliers: server-side apply against the cluster, and ([`files`]) writes of the user's
//! files. The plan decides what; these only carry it out and report exactly what happened.

pub mod files;

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::kubeconfig::one_line;
use crate::model::{FluxKind, ObjectRef};

pub const FIELD_MANAGER: &str = "kubectl-azflux";

/// The manager of the restart stamp. Apart from [`FIELD_MANAGER`]: an apply by one manager
/// removes whatever it set before and leaves out now, so a stamp applied as `kubectl-azflux`
/// would strip the wiring from the Deployment.
pub const RESTART_FIELD_MANAGER: &str = "kubectl-azflux-restart";

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Another field manager owns fields we would change.
    Conflict {
        managers: Vec<String>,
        message: String,
    },
    Failed(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Conflict { message, .. } | ApplyError::Failed(message) => {
                f.write_str(message)
            }
        }
    }
}

fn plural(kind: &str, api_version: &str) -> String {
    match kind {
        "ServiceAccount" => "serviceaccounts".into(),
        "Deployment" => "deployments".into(),
        other => FluxKind::from_api(api_version, other).map_or_else(
            || format!("{}s", other.to_lowercase()),
            |k| k.plural().to_string(),
        ),
    }
}

pub fn object_path(api_version: &str, target: &ObjectRef) -> String {
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let resource = plural(&target.kind, api_version);
    match &target.namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{resource}/{}", target.name),
        None => format!("{base}/{resource}/{}", target.name),
    }
}

/// The managers named in a conflict message (`conflict with "kustomize-controller" using ...`).
fn conflicting_managers(status: &Value) -> Vec<String> {
    let mut managers: Vec<String> = status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("message").and_then(Value::as_str))
        .chain(status.get("message").and_then(Value::as_str))
        .flat_map(|m| {
            m.split("conflict with \"")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

#[derive(Clone)]
pub struct Applier {
    client: kube::Client,
    timeout: Duration,
}

impl Applier {
    pub fn new(client: kube::Client, timeout: Duration) -> Applier {
        Applier { client, timeout }
    }

    async fn send(&self, request: Request<Vec<u8>>) -> Result<(StatusCode, Value), ApplyError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, kube::client::Body::from(body));
        let exchange = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| ApplyError::Failed(one_line(&e)))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| {
                    ApplyError::Failed(format!(
                        "connection closed while reading the response: {}",
                        one_line(&e)
                    ))
                })?
                .to_bytes();
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok((status, value))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                ApplyError::Failed(format!("no answer within {}s", self.timeout.as_secs()))
            })?
    }

    /// The object as the server has it now, `None` when it does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        target: &ObjectRef,
    ) -> Result<Option<Value>, ApplyError> {
        let request = Request::get(object_path(api_version, target))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| ApplyError::Failed(e.to_string()))?;
        let (status, value) = self.send(request).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() && value.is_object() => Ok(Some(value)),
            s => Err(ApplyError::Failed(format!(
                "{target}: reading it failed: {}",
                value
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("HTTP {s}"), str::to_string)
            ))),
        }
    }

    /// Server-side apply of one body, as field manager `kubectl-azflux`.
    pub async fn apply(
        &self,
        api_version: &str,
        target: &ObjectRef,
        body: &Value,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, ApplyError> {
        self.apply_as(FIELD_MANAGER, api_version, target, body, dry_run, force)
            .await
    }

    async fn apply_as(
        &self,
        manager: &str,
        api_version: &str,
        target: &ObjectRef,
        body: &Value,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, ApplyError> {
        let mut url = format!(
            "{}?fieldManager={manager}&fieldValidation=Strict",
            object_path(api_version, target)
        );
        if force {
            url.push_str("&force=true");
        }
        if dry_run {
            url.push_str("&dryRun=All");
        }
        let request = Request::patch(url)
            .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
            .header(http::header::ACCEPT, "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
            .map_err(|e| ApplyError::Failed(e.to_string()))?;
        let (status, value) = self.send(request).await?;
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), str::to_string);
        if status == StatusCode::CONFLICT {
            return Err(ApplyError::Conflict {
                managers: conflicting_managers(&value),
                message: format!("{target}: {message}"),
            });
        }
        Err(ApplyError::Failed(format!("{target}: {message}")))
    }

    /// What `kubectl rollout restart` does: stamp the pod template so the Deployment rolls.
    pub async fn restart(&self, deployment: &ObjectRef, now: &str) -> Result<Value, ApplyError> {
        let mut body = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment.name},
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}
        });
        if let Some(ns) = &deployment.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        self.apply_as(
            RESTART_FIELD_MANAGER,
            "apps/v1",
            deployment,
            &body,
            false,
            true,
        )
        .await
    }

    /// Whether the Deployment's rollout is complete, as `kubectl rollout status` judges it.
    pub async fn rolled_out(&self, deployment: &ObjectRef) -> Result<bool, ApplyError> {
        let request = Request::get(object_path("apps/v1", deployment))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| ApplyError::Failed(e.to_string()))?;
        let (status, value) = self.send(request).await?;
        if !status.is_success() {
            return Err(ApplyError::Failed(format!("{deployment}: HTTP {status}")));
        }
        let number = |pointer: &str| value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
        let replicas = value
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        Ok(
            number("/status/observedGeneration") >= number("/metadata/generation")
                && number("/status/updatedReplicas") == replicas
                && number("/status/availableReplicas") >= replicas
                && number("/status/replicas") == replicas,
        )
    }

    /// Waits for every Deployment to roll out, calling `progress` as each one completes.
    pub async fn wait_rollouts(
        &self,
        deployments: &[ObjectRef],
        deadline: Duration,
        mut progress: impl FnMut(&ObjectRef),
    ) -> Result<(), ApplyError> {
        let start = Instant::now();
        let mut pending: Vec<&ObjectRef> = deployments.iter().collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for deployment in pending {
                if self.rolled_out(deployment).await? {
                    progress(deployment);
                } else {
                    still.push(deployment);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if start.elapsed() >= deadline {
                let names: Vec<String> = pending.iter().map(ToString::to_string).collect();
                return Err(ApplyError::Failed(format!(
                    "rollout not complete after {}s: {}",
                    deadline.as_secs(),
                    names.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_core_apps_and_flux_objects() {
        let sa = ObjectRef::namespaced("ServiceAccount", "flux-system", "source-controller");
        assert_eq!(
            object_path("v1", &sa),
            "/api/v1/namespaces/flux-system/serviceaccounts/source-controller"
        );
        let oci = ObjectRef::namespaced("OCIRepository", "apps", "x");
        assert_eq!(
            object_path("source.toolkit.fluxcd.io/v1beta2", &oci),
            "/apis/source.toolkit.fluxcd.io/v1beta2/namespaces/apps/ocirepositories/x"
        );
    }

    #[test]
    fn managers_are_read_from_conflicts() {
        let status = json!({"message": "Apply failed with 1 conflict: conflict with \"kustomize-controller\" using apps/v1: .spec.template.spec.containers[name=\"manager\"].args",
            "details": {"causes": [{"message": "conflict with \"kustomize-controller\" using apps/v1"}]}});
        assert_eq!(conflicting_managers(&status), vec!["kustomize-controller"]);
    }
}
