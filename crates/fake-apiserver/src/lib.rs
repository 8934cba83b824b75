//! A loopback stand-in for kube-apiserver, shared by tests, benchmarks and
//! demos on machines where no real cluster can run.
//!
//! It behaves like the real server for what it implements and answers like
//! the real one (a `Status` body with the real code and reason) for what it
//! does not.
//!
//! Implemented:
//! - `/version` (v1.33.2), `/healthz`, `/readyz`, `/livez`, and `/` (paths).
//! - Discovery: `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`, and
//!   aggregated discovery (`apidiscovery.k8s.io/v2`) on `/api` and `/apis`
//!   when Accept asks for it. Built-in kinds: every group version v1.33
//!   serves by default (`builtins.rs`), with its short names, categories,
//!   verbs and subresources; autoscaling at v2 and v1. Each CRD in the seed
//!   adds its kind at every served version; a group's preferred version is
//!   the highest by the real server's ordering (v1 > v1beta2 > v1beta1 >
//!   v1alpha1), whichever version is the storage one.
//! - OpenAPI v3 (`/openapi/v3` and a document per group version) with paths
//!   and operations only, no schemas: enough for kubectl to see that PATCH
//!   takes `fieldValidation` and leave validation to the server, so plain
//!   `kubectl apply --server-side` works. `/openapi/v2` is 404.
//! - GET of one object (and of its `status` subresource where one exists),
//!   LIST in a namespace, across namespaces and of cluster-scoped kinds, with
//!   `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`, `>`, `<`),
//!   `fieldSelector` on `metadata.name` and `metadata.namespace`, and
//!   `limit`/`continue` paging in (namespace, name) order.
//! - Accept negotiation: plain JSON, `meta.k8s.io/v1` `Table` (Name and Age
//!   columns only, as for a CRD without printer columns; built-in kinds do
//!   not get their richer real columns) and `PartialObjectMetadata(List)`;
//!   406 when none of the offered types is JSON.
//! - A custom resource is stored once and served at any served version with
//!   `apiVersion` rewritten; no schema conversion is done.
//! - Server-owned metadata: `uid`, `creationTimestamp` and (for kinds that
//!   track it) `generation: 1` when the seed lacks them; `resourceVersion`
//!   is always assigned by the store, as every write on a real server does.
//!   Namespaces the objects live in, and `default`, exist as Namespaces.
//! - Server-side apply: `PATCH` with `application/apply-patch+yaml` (a YAML
//!   or JSON body) on any object of any served kind, creating it (201) when
//!   it does not exist in an existing namespace. `fieldManager` is required
//!   (422 `PatchOptions ... is invalid`); `force` is read as Go reads a bool;
//!   `dryRun=All` answers the result and stores nothing; `fieldValidation`
//!   (Strict, Warn, Ignore) is accepted and has no effect, as there is no
//!   schema to check fields against. The body must be an object of the
//!   URL's apiVersion and kind (400 `invalid object type`) without
//!   `managedFields` (400), its name and namespace those of the URL (400);
//!   `metadata.resourceVersion` and `metadata.uid` in it are preconditions
//!   (409). Merging and ownership follow the real structured-merge-diff:
//!   maps merge by key; keyed lists merge by key (containers, init and
//!   ephemeral containers and volumes by `name`, env by `name`, volumeMounts
//!   by `mountPath`, ports by `containerPort`+`protocol`, Service ports by
//!   `port`+`protocol`, webhooks by `name`, status conditions by `type`,
//!   ownerReferences by `uid`, finalizers as a set); label selectors, node
//!   selectors and env value references are atomic, as are all other lists
//!   (`args`, `command`, ...) and every list of a custom resource, whose
//!   schema is not consulted (treated as `x-kubernetes-preserve-unknown-fields`).
//!   `metadata.managedFields` holds real `FieldsV1` entries; a field the
//!   applier owned before and leaves out is removed unless another manager
//!   owns it; changing a field another manager owns is a 409 naming manager
//!   and path as the real server does, unless `force=true` takes it over; the
//!   same value is shared ownership. `status` is reset where a status
//!   subresource exists, `generation` bumps when anything outside metadata
//!   and status changes (and on annotation changes of Deployments). An apply
//!   that changes nothing writes nothing.
//! - Seeded objects without `managedFields` are owned by
//!   [`FakeConfig::seed_manager`] (an Update entry, as `kubectl apply` without
//!   `--server-side` leaves), or, without one, credited to
//!   `before-first-apply` at the first apply, as the real server does.
//! - Controllers and admission, simulated at once rather than eventually:
//!   after a Deployment is created or its generation bumps, the Deployment
//!   controller, the ReplicaSet controller and the kubelet run to completion
//!   (the ReplicaSet of the template's `pod-template-hash` at
//!   `spec.replicas`, others at zero; selected pods of another template, or
//!   surplus ones, deleted at once, new ones created `Running`; Deployment
//!   and ReplicaSet status complete, with the revision annotation), each
//!   write recorded under `kube-controller-manager` or `kubelet` as on a real
//!   cluster. Seeded pods carry no hash and count as the current template
//!   until it changes. When a MutatingWebhookConfiguration has a webhook named
//!   `*azure-workload-identity.io`, pods created with the label
//!   `azure.workload.identity/use: "true"` get what the Azure workload
//!   identity webhook injects: `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` from
//!   their ServiceAccount's annotations (left out when not annotated; the
//!   real webhook falls back to its own tenant), `AZURE_FEDERATED_TOKEN_FILE`,
//!   `AZURE_AUTHORITY_HOST`, and the projected `azure-identity-token` volume
//!   and its mount. A pod created by apply stays `Pending`.
//! - TokenRequest (`POST .../serviceaccounts/{name}/token`): a JWT with the
//!   real claims and a placeholder signature, from a JSON or protobuf body
//!   (kubectl sends protobuf); 404 for a missing
//!   ServiceAccount; 422 for `expirationSeconds` under 600 or over 2^32, as
//!   the real server validates. OIDC discovery and a JWKS document.
//! - Bearer-token authentication when `required_token` is set (401 for every
//!   path otherwise, as with anonymous auth disabled), injected latency,
//!   injected faults, a request log that tells writes from the rest, and the
//!   most group-version discovery requests it answered at once.
//!
//! Not implemented, and answered the way the real server answers a request
//! it refuses: create, update, delete and patch types other than apply (405
//! MethodNotAllowed), apply to subresources (405), GET and LIST of kinds
//! that are requests rather than stored objects (reviews, bindings: 405,
//! and refused in a seed), watch (405 too, where the
//! real server would stream), subresources other than `status` and `token`
//! (404), protobuf and YAML responses (406 when they are all a client
//! accepts), `resourceVersion`/`resourceVersionMatch` semantics on lists (the
//! current state is always served), and field selectors on other fields
//! (400). Not simulated: schema validation and defaulting (an apply is stored
//! as merged), the ServiceAccount admission check (pods are created whatever
//! their account), graceful pod termination, rollout pacing (`maxSurge`,
//! `maxUnavailable`, readiness), the cap of ten Update managers, kubectl's
//! migration of `last-applied-configuration` ownership, and the webhook's
//! skip-containers, token-expiration and proxy-sidecar annotations. Token
//! signatures cannot be verified.

mod apply;
mod builtins;
mod catalog;
mod controllers;
mod discovery;
mod fields;
mod kubeconfig;
mod openapi;
mod proto;
mod seed;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod token;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::oneshot;

pub mod demo;
pub mod flux;

pub use kubeconfig::{KubeUser, kubeconfig_yaml};

pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The manager `kubectl apply` without `--server-side` records, which is how
/// most objects in a real cluster came to be.
pub const DEFAULT_SEED_MANAGER: &str = "kubectl-client-side-apply";

/// What the fake serves and how it misbehaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Seed objects of any kind; CRDs among them make their kinds
    /// discoverable.
    pub objects: Vec<Value>,
    /// The service account token issuer; [`DEFAULT_ISSUER`] when unset.
    pub issuer: Option<String>,
    /// Waited before answering each request.
    pub latency: Duration,
    pub faults: Vec<Fault>,
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    pub required_token: Option<String>,
    /// One JSON line per request served is appended here.
    pub request_log: Option<PathBuf>,
    /// 0 picks an ephemeral port.
    pub port: u16,
    /// Caps the `limit` a client asks for; requests without `limit` still get
    /// every item, as on the real server.
    pub page_limit_max: Option<usize>,
    /// Returned as every TokenRequest's token instead of a generated JWT.
    pub token_override: Option<String>,
    /// Answers `/api` and `/apis` in the legacy shape only, as servers
    /// before 1.26 (or with the AggregatedDiscoveryEndpoint gate off) do.
    pub disable_aggregated_discovery: bool,
    /// Who created the seeded objects: each seeded object without
    /// `managedFields` gets one Update entry of this manager owning every
    /// field it sets (server-owned metadata and a reset `status` aside).
    /// `None` stores them without `managedFields`, as objects written before
    /// field tracking; the first apply then credits their fields to
    /// `before-first-apply`, as the real server does.
    /// [`DEFAULT_SEED_MANAGER`] by default.
    pub seed_manager: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            objects: Vec::new(),
            issuer: None,
            latency: Duration::ZERO,
            faults: Vec::new(),
            required_token: None,
            request_log: None,
            port: 0,
            page_limit_max: None,
            token_override: None,
            disable_aggregated_discovery: false,
            seed_manager: Some(DEFAULT_SEED_MANAGER.to_owned()),
        }
    }
}

impl FakeConfig {
    /// Every object in every `*.yaml`, `*.yml` and `*.json` file under
    /// `dir`, recursively, with multi-document YAML split and `kind: List`
    /// expanded. Objects the fake could not serve are reported here.
    pub fn from_seed_dir(dir: &Path) -> Result<FakeConfig, String> {
        let objects = seed::load_dir(dir)?;
        store::Store::from_seed(objects.clone(), Timestamp::now(), None)?;
        Ok(FakeConfig {
            objects,
            ..FakeConfig::default()
        })
    }
}

/// A misbehaviour injected for requests whose method matches and whose path
/// (with `?query`) contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Any method when `None`; compared case-insensitively.
    pub method: Option<String>,
    pub path_contains: String,
    pub status: u16,
    /// How many matching requests it applies to; `None` for all of them.
    pub times: Option<u32>,
    /// How many matching requests it lets through first (to later faults
    /// and then the server), so that it can hit, say, the third PATCH.
    pub skip: u32,
    /// Sent as `Retry-After`, and in a 429's `details.retryAfterSeconds`.
    pub retry_after_secs: Option<u32>,
    pub behaviour: FaultBehaviour,
}

impl Fault {
    /// Applies to every request whose path contains `path_contains`.
    pub fn new(path_contains: &str, status: u16, behaviour: FaultBehaviour) -> Fault {
        Fault {
            method: None,
            path_contains: path_contains.to_owned(),
            status,
            times: None,
            skip: 0,
            retry_after_secs: None,
            behaviour,
        }
    }

    #[must_use]
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_owned());
        self
    }

    #[must_use]
    pub fn times(mut self, times: u32) -> Fault {
        self.times = Some(times);
        self
    }

    #[must_use]
    pub fn skip(mut self, requests: u32) -> Fault {
        self.skip = requests;
        self
    }

    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Fault {
        self.retry_after_secs = Some(seconds);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultBehaviour {
    /// A Kubernetes `Status` with the fault's code and the real reason
    /// (Forbidden, NotFound, TooManyRequests, InternalError, ...).
    Status,
    /// Never answers.
    Hang,
    /// Sends the status line, headers with the full `Content-Length`, and the
    /// first half of the body, then drops the connection.
    CloseMidResponse,
    /// A complete response whose JSON body is broken.
    MalformedJson,
    /// An HTML page (a proxy's or a login page) with the fault's code.
    Html,
    /// The list the server would send, with `metadata.continue` set to the same token every
    /// time.
    RepeatedContinue,
    /// The list the server would send, with a new `metadata.continue` token every time.
    EndlessContinue,
    /// A 200 whose body streams this many MiB (a JSON list of spaces) without a length.
    Oversized(u32),
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// From arrival to the response being ready, injected latency included.
    pub duration: Duration,
    /// The request's Content-Type.
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    pub response_content_type: Option<String>,
    /// The request body, for methods other than GET.
    pub body: Option<String>,
    /// Whether serving it changed stored state: false for reads, refused
    /// writes, dry runs and applies that changed nothing.
    pub wrote: bool,
}

/// Serves `config` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: FakeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let shared = Arc::new(server::Shared::new(config)?);
    server::run(listener, shared, shutdown).await
}

/// A fake running on its own thread and tokio runtime, so plain `#[test]`
/// functions can use it and run subprocesses against it. Stops on drop.
pub struct RunningServer {
    url: String,
    shared: Arc<server::Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Panics when the port cannot be bound or the seed cannot be served:
    /// both are mistakes in the test that started it.
    pub fn start(config: FakeConfig) -> RunningServer {
        let port = config.port;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("fake apiserver: cannot bind 127.0.0.1:{port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("fake apiserver: cannot make the listener non-blocking");
        let address = listener
            .local_addr()
            .expect("fake apiserver: the listener has no address");
        let shared =
            Arc::new(server::Shared::new(config).unwrap_or_else(|e| panic!("fake apiserver: {e}")));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake apiserver: cannot build a tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("fake apiserver: cannot register the listener");
                    let shutdown = async {
                        // A dropped sender means the same as a sent stop.
                        let _ = stopped.await;
                    };
                    if let Err(e) = server::run(listener, serving, shutdown).await {
                        eprintln!("fake apiserver: {e}");
                    }
                });
            })
            .expect("fake apiserver: cannot spawn its thread");
        RunningServer {
            url: format!("http://{address}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Context `fake`, cluster `fake`, namespace `default`.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "callers build the user inline; by value keeps call sites free of borrows"
    )]
    pub fn kubeconfig_yaml(&self, user: KubeUser) -> String {
        kubeconfig_yaml(&self.url, &user)
    }

    pub fn write_kubeconfig(&self, path: &Path, user: KubeUser) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(user))
    }

    /// Every request answered so far, oldest first. Hung requests are not
    /// here: they are never answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// How many requests a Hang fault is holding: a test waits for this
    /// before it acts on a request that is under way.
    pub fn held_requests(&self) -> u64 {
        self.shared.held()
    }

    /// The most group-version discovery requests (`/api/VERSION`, `/apis/GROUP/VERSION`) the
    /// server was answering at the same time, each from its arrival to its response being
    /// ready (injected latency included): a test of a client's bound on concurrent discovery
    /// reads this.
    pub fn discovery_most_in_flight(&self) -> u64 {
        self.shared.discovery_most_in_flight()
    }

    /// The requests that changed stored state, oldest first.
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.shared
            .requests()
            .into_iter()
            .filter(|r| r.wrote)
            .collect()
    }

    /// The stored object as it would be served at `api_version`.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.shared.object(api_version, kind, namespace, name)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server thread may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A server thread that panicked has already printed why.
            let _ = thread.join();
        }
    }
}
