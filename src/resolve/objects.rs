//! Per kind: whether an object reaches Azure, and which credential its controller uses for
//! it, in the order the controller's code decides it at the release it runs. The sources are
//! named per rule; README's "Resolution order" table says the same in prose.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::features::{self, Feature, Running};
use super::{ControllerCredential, ControllerPath, Credential, SecretHolds, UsePath};
use crate::model::azure_use::{AzureService, WiringMode, controller_for};
use crate::model::{AzureKvCredential, FluxKind, FluxObject, SecretInfo, Snapshot};
use crate::wiring::{CLOUDS, host_of};

/// What one rule decided.
struct Decision {
    credential: Credential,
    reason: String,
    bypasses: Option<String>,
    needs: Vec<Feature>,
    refused: Option<String>,
}

impl Decision {
    fn new(credential: Credential, reason: impl Into<String>) -> Decision {
        Decision {
            credential,
            reason: reason.into(),
            bypasses: None,
            needs: Vec::new(),
            refused: None,
        }
    }

    fn bypassing(mut self, what: impl Into<String>) -> Decision {
        self.bypasses = Some(what.into());
        self
    }

    fn needing(mut self, feature: &Feature, running: &Running) -> Decision {
        if running.lacks(feature) {
            self.needs.push(*feature);
        }
        self
    }
}

fn is_devops(url: &str) -> bool {
    let host = host_of(url);
    url.starts_with("https://") && (host == "dev.azure.com" || host.ends_with(".visualstudio.com"))
}

/// ACR login servers, as fluxcd/pkg auth/azure/provider.go accepts them
/// (`^.+\.(azurecr\.io|azurecr\.cn|azurecr\.de|azurecr\.us)$`).
fn is_registry(url: &str) -> bool {
    let host = host_of(url);
    host.ends_with(".azurecr.io")
        || host.ends_with(".azurecr.cn")
        || host.ends_with(".azurecr.de")
        || host.ends_with(".azurecr.us")
}

fn is_blob(url: &str) -> bool {
    let host = host_of(url);
    CLOUDS.iter().any(|c| host.ends_with(c.storage_suffix))
}

/// What resolution needs around one object.
struct Context<'a> {
    snapshot: &'a Snapshot,
    controllers: &'a [ControllerPath],
}

impl Context<'_> {
    fn controller(&self, name: &str) -> Option<&ControllerPath> {
        self.controllers.iter().find(|c| c.name == name)
    }

    fn running(&self, name: &str) -> Running {
        self.controller(name).map(|c| c.running).unwrap_or_default()
    }

    /// The identity the controller has of its own, when it has workload identity: what a
    /// Secret that wins over it bypasses.
    fn controller_identity(&self, name: &str) -> Option<String> {
        let path = self.controller(name)?;
        matches!(
            path.credential,
            ControllerCredential::WorkloadIdentity { .. }
        )
        .then(|| format!("{name}'s workload identity"))
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<&SecretInfo> {
        self.snapshot.secret(namespace, name)
    }

    /// The lockdown default that replaces the controller's identity for this flag, when the
    /// controller runs with it.
    fn lockdown(&self, controller: &str, flag: &'static str) -> Option<Credential> {
        let name = self.controller(controller)?.lockdown.get(flag)?;
        Some(Credential::ServiceAccount {
            name: name.clone(),
            lockdown_default: Some(flag),
        })
    }

    /// Object-level identity named by the object, else the lockdown default, else the
    /// controller's own.
    fn identity(
        &self,
        object: &FluxObject,
        controller: &str,
        object_level: &Feature,
        lockdown_flag: &'static str,
    ) -> Decision {
        let running = self.running(controller);
        if let Some(sa) = &object.service_account_name {
            return Decision::new(
                Credential::ServiceAccount {
                    name: sa.clone(),
                    lockdown_default: None,
                },
                format!("spec.serviceAccountName {sa}: object-level workload identity"),
            )
            .needing(object_level, &running);
        }
        if let Some(credential) = self.lockdown(controller, lockdown_flag) {
            return Decision::new(
                credential,
                format!("no serviceAccountName, and {controller} runs with {lockdown_flag}"),
            );
        }
        Decision::new(
            Credential::Controller,
            format!("no serviceAccountName: {controller}'s own identity"),
        )
    }
}

fn static_secret(name: &str, what: &'static str) -> Credential {
    Credential::Secret {
        name: name.to_string(),
        holds: SecretHolds::Static { what },
    }
}

/// GitRepository (fluxcd/source-controller gitrepository_controller.go getAuthOpts).
fn git_repository(
    ctx: &Context<'_>,
    object: &FluxObject,
    controller: &'static str,
) -> Option<Decision> {
    let url = object.url.as_deref().unwrap_or_default();
    if !object.provider_is_azure() && !is_devops(url) {
        return None;
    }
    let running = ctx.running("source-controller");
    let from_secret = |what| {
        object.secret_ref.as_ref().map_or_else(
            || {
                Decision::new(
                    Credential::Anonymous,
                    "provider generic and no secretRef: no credentials",
                )
            },
            |s| {
                Decision::new(
                    static_secret(s, what),
                    format!("provider generic: the credentials in Secret {s}"),
                )
            },
        )
    };
    if !object.provider_is_azure() {
        return Some(from_secret("a Git token or SSH key"));
    }
    if running.lacks(&features::GIT_PROVIDER_AZURE) {
        // The CRD of that release has no provider field; the API server prunes it.
        let mut decision = from_secret("a Git token or SSH key");
        decision.reason = format!(
            "source-controller {} has no GitRepository provider field (it came with {}), so provider: azure is dropped",
            running.describe(),
            features::GIT_PROVIDER_AZURE.since
        );
        decision.needs.push(features::GIT_PROVIDER_AZURE);
        return Some(decision);
    }
    if let Some(secret) = &object.secret_ref
        && running.lacks(&features::GIT_PROVIDER_OVERRIDES_SECRET)
        && ctx.secret(&object.namespace, secret).is_none_or(|s| {
            s.keys
                .iter()
                .any(|k| matches!(k.as_str(), "username" | "password" | "bearerToken"))
        })
    {
        return Some(
            Decision::new(
                static_secret(secret, "a Git username and password or bearer token"),
                format!("source-controller {} uses the Secret's credentials before the provider's (v1.6.0 reversed this)", running.describe()),
            )
            .bypassing("the Azure DevOps workload identity"),
        );
    }
    let mut decision = ctx.identity(
        object,
        controller,
        &features::OBJECT_LEVEL_BUCKET_GIT,
        "--default-service-account",
    );
    if let Some(secret) = &object.secret_ref {
        let _ = write!(
            decision.reason,
            "; Secret {secret} supplies only TLS and SSH data, the provider's token replaces its credentials"
        );
    }
    Some(decision)
}

/// ImageUpdateAutomation: its GitRepository's provider and serviceAccountName, the
/// ServiceAccount looked up in the automation's own namespace
/// (fluxcd/image-automation-controller internal/source/git.go).
fn update_automation(
    ctx: &Context<'_>,
    object: &FluxObject,
    git: &HashMap<(&str, &str), &FluxObject>,
) -> Option<Decision> {
    let source = object.source_ref.as_ref()?;
    let ns = source.namespace.as_deref().unwrap_or(&object.namespace);
    let repo = git.get(&(ns, source.name.as_str())).copied()?;
    if !repo.provider_is_azure() {
        return None;
    }
    let controller = "image-automation-controller";
    let running = ctx.running(controller);
    let mut decision = ctx.identity(
        repo,
        controller,
        &features::OBJECT_LEVEL_IMAGE_AUTOMATION,
        "--default-service-account",
    );
    decision.reason = format!(
        "GitRepository {ns}/{} has provider: azure; {}",
        repo.name, decision.reason
    );
    Some(decision.needing(&features::IMAGE_AUTOMATION_WORKLOAD_IDENTITY, &running))
}

/// OCIRepository (ocirepository_controller.go reconcileSource and keychain): any secretRef or
/// pull secret of the ServiceAccount makes the keychain non-anonymous, and provider login
/// runs only for an anonymous keychain.
fn oci_repository(ctx: &Context<'_>, object: &FluxObject) -> Option<Decision> {
    let url = object.url.as_deref().unwrap_or_default();
    if !object.provider_is_azure() && !is_registry(url) {
        return None;
    }
    let controller = "source-controller";
    let wants = if object.service_account_name.is_some() {
        "object-level workload identity"
    } else {
        "workload identity"
    };
    if let Some(secret) = &object.secret_ref {
        let decision = Decision::new(
            static_secret(secret, "a registry login"),
            format!("secretRef {secret}: static credentials come before any provider login"),
        );
        return Some(if object.provider_is_azure() {
            decision.bypassing(wants)
        } else {
            decision
        });
    }
    let pull_secret = object.service_account_name.as_ref().and_then(|sa| {
        ctx.snapshot
            .service_account(&object.namespace, sa)
            .and_then(|sa| sa.image_pull_secrets.first())
    });
    if let Some(pull) = pull_secret {
        let decision = Decision::new(
            static_secret(pull, "the ServiceAccount's imagePullSecrets"),
            format!(
                "ServiceAccount {} has imagePullSecrets: they come before any provider login",
                object.service_account_name.as_deref().unwrap_or_default()
            ),
        );
        return Some(if object.provider_is_azure() {
            decision.bypassing(wants)
        } else {
            decision
        });
    }
    if !object.provider_is_azure() {
        return Some(Decision::new(
            Credential::Anonymous,
            format!(
                "provider {}: no login, anonymous pulls",
                object.provider.as_deref().unwrap_or("generic (unset)")
            ),
        ));
    }
    let running = ctx.running(controller);
    if object.service_account_name.is_some() && running.lacks(&features::OBJECT_LEVEL_OCI) {
        let mut decision = Decision::new(
            Credential::Controller,
            format!(
                "source-controller {} reads serviceAccountName only for imagePullSecrets: its own identity logs in",
                running.describe()
            ),
        );
        decision.needs.push(features::OBJECT_LEVEL_OCI);
        return Some(decision);
    }
    Some(ctx.identity(
        object,
        controller,
        &features::OBJECT_LEVEL_OCI,
        "--default-service-account",
    ))
}

/// HelmRepository `type: oci` (internal/helm/getter/client_opts.go): provider login only
/// without a secretRef; never object-level, never a lockdown default.
fn helm_repository(object: &FluxObject) -> Option<Decision> {
    if object.type_.as_deref() != Some("oci") {
        return None;
    }
    let url = object.url.as_deref().unwrap_or_default();
    if !object.provider_is_azure() && !is_registry(url) {
        return None;
    }
    if let Some(secret) = &object.secret_ref {
        let decision = Decision::new(
            static_secret(secret, "a registry login"),
            format!("secretRef {secret}: provider login runs only without a secretRef"),
        );
        return Some(if object.provider_is_azure() {
            decision.bypassing("workload identity")
        } else {
            decision
        });
    }
    if object.provider_is_azure() {
        Some(Decision::new(
            Credential::Controller,
            "HelmRepository has no serviceAccountName: always source-controller's own identity",
        ))
    } else {
        Some(Decision::new(
            Credential::Anonymous,
            format!(
                "provider {}: no login, anonymous pulls",
                object.provider.as_deref().unwrap_or("generic (unset)")
            ),
        ))
    }
}

/// Bucket with provider azure (internal/bucket/azure/blob.go NewClient and
/// tokenCredentialFromSecret): a Secret with data wins, first match: client secret,
/// certificate, clientId alone (a managed identity), account key, SAS key.
fn bucket(ctx: &Context<'_>, object: &FluxObject) -> Option<Decision> {
    let url = object.url.as_deref().unwrap_or_default();
    if !object.provider_is_azure() && !is_blob(url) {
        return None;
    }
    if !object.provider_is_azure() {
        return Some(Decision::new(
            Credential::Anonymous,
            format!(
                "provider {}: the generic provider speaks the S3 API, which Blob Storage does not",
                object.provider.as_deref().unwrap_or("generic (unset)")
            ),
        ));
    }
    let controller = "source-controller";
    if let Some(secret) = &object.secret_ref {
        let mut decision = match ctx.secret(&object.namespace, secret) {
            Some(info) => {
                let has = |k: &str| info.keys.iter().any(|key| key == k);
                let holds = if has("tenantId") && has("clientId") && has("clientSecret") {
                    SecretHolds::ServicePrincipal
                } else if has("tenantId") && has("clientId") && has("clientCertificate") {
                    SecretHolds::Certificate
                } else if has("clientId") {
                    SecretHolds::ManagedIdentity { client_id: None }
                } else if has("accountKey") {
                    SecretHolds::Static {
                        what: "a storage account key",
                    }
                } else if has("sasKey") {
                    SecretHolds::Static {
                        what: "a SAS token",
                    }
                } else if info.keys.is_empty() {
                    return Some(ctx.identity(
                        object,
                        controller,
                        &features::OBJECT_LEVEL_BUCKET_GIT,
                        "--default-service-account",
                    ));
                } else {
                    SecretHolds::Unknown
                };
                Decision::new(
                    Credential::Secret {
                        name: secret.clone(),
                        holds,
                    },
                    format!(
                        "Secret {secret} has data: it is used and the identity chain is not consulted"
                    ),
                )
            }
            None => Decision::new(
                Credential::Secret {
                    name: secret.clone(),
                    holds: SecretHolds::Unknown,
                },
                format!("Secret {secret}: when it has data it is used instead of any identity"),
            ),
        };
        if let Some(sa) = &object.service_account_name {
            decision.refused = Some(format!(
                "the Bucket API rejects secretRef {secret} together with serviceAccountName {sa}: `cannot set both .spec.secretRef and .spec.serviceAccountName`"
            ));
        }
        let identity = if object.service_account_name.is_some() {
            Some("object-level workload identity".to_string())
        } else {
            ctx.controller_identity(controller)
        };
        if let Some(identity) = identity {
            decision = decision.bypassing(identity);
        }
        return Some(decision);
    }
    Some(ctx.identity(
        object,
        controller,
        &features::OBJECT_LEVEL_BUCKET_GIT,
        "--default-service-account",
    ))
}

/// ImageRepository (fluxcd/image-reflector-controller internal/registry/options.go): before
/// v1.0.0 a secretRef wins over the provider, from v1.0.0 a provider other than generic wins
/// and the secretRef is not read; `--azure-autologin-for-acr` (v0.16.0 to v0.35.x, a no-op in
/// v0.25.0) logs in to ACR hosts for provider generic and no secretRef.
fn image_repository(ctx: &Context<'_>, object: &FluxObject) -> Option<Decision> {
    let url = object.url.as_deref().unwrap_or_default();
    let registry = is_registry(url);
    if !object.provider_is_azure() && !registry {
        return None;
    }
    let controller = "image-reflector-controller";
    let running = ctx.running(controller);
    let provider_dropped =
        object.provider_is_azure() && !features::image_api_has_provider(&object.api_version);
    let provider_azure = object.provider_is_azure() && !provider_dropped;
    let provider_first =
        running.has(&features::IMAGE_REFLECTOR_PROVIDER_OVER_SECRET) != Some(false);
    if let Some(secret) = &object.secret_ref
        && !(provider_azure && provider_first)
    {
        let decision = Decision::new(
            static_secret(secret, "a registry login"),
            format!(
                "secretRef {secret}: image-reflector-controller {} uses it before any provider login",
                running.describe()
            ),
        );
        return Some(if provider_azure {
            decision.bypassing("workload identity")
        } else {
            decision
        });
    }
    if !provider_azure {
        let autologin = ctx
            .snapshot
            .controller(controller)
            .is_some_and(|w| super::has_flag(w, super::AUTOLOGIN_FLAG));
        let honoured = running.lacks(&features::IMAGE_REFLECTOR_AUTOLOGIN_REMOVED)
            && (running.lacks(&features::IMAGE_REFLECTOR_AUTOLOGIN_NOOP)
                || running.has(&features::IMAGE_REFLECTOR_AUTOLOGIN_RESTORED) == Some(true));
        if autologin && registry && honoured {
            return Some(Decision::new(
                Credential::Autologin,
                format!(
                    "{} logs in to ACR hosts with image-reflector-controller's own credential",
                    super::AUTOLOGIN_FLAG
                ),
            ));
        }
        let reason = if provider_dropped {
            format!(
                "{} has no provider field, so provider: azure is dropped: anonymous pulls",
                object.api_version
            )
        } else {
            format!(
                "provider {}: no login, anonymous pulls",
                object.provider.as_deref().unwrap_or("generic (unset)")
            )
        };
        let mut decision = Decision::new(Credential::Anonymous, reason);
        if provider_dropped {
            decision.needs.push(features::IMAGE_PROVIDER_FIELD);
        }
        return Some(decision);
    }
    if object.service_account_name.is_some()
        && running.lacks(&features::OBJECT_LEVEL_IMAGE_REFLECTOR)
    {
        let mut decision = Decision::new(
            Credential::Controller,
            format!(
                "image-reflector-controller {} reads serviceAccountName only for pull secrets: its own identity logs in",
                running.describe()
            ),
        );
        decision.needs.push(features::OBJECT_LEVEL_IMAGE_REFLECTOR);
        return Some(decision);
    }
    let mut decision = ctx.identity(
        object,
        controller,
        &features::OBJECT_LEVEL_IMAGE_REFLECTOR,
        "--default-service-account",
    );
    if let Some(secret) = &object.secret_ref {
        let _ = write!(
            decision.reason,
            "; provider azure comes first from image-reflector-controller v1.0.0, so secretRef {secret} is not read"
        );
    }
    Some(decision)
}

/// Provider `azuredevops` and `azureeventhub` (fluxcd/notification-controller
/// internal/notifier/azure_devops.go, azure_eventhub.go).
fn notification_provider(ctx: &Context<'_>, object: &FluxObject) -> Option<Decision> {
    let (service, static_what, workload_identity) = match object.type_.as_deref() {
        Some("azuredevops") => (
            AzureService::DevOps,
            "a personal access token",
            &features::NOTIFICATION_DEVOPS_WORKLOAD_IDENTITY,
        ),
        Some("azureeventhub") => (
            AzureService::EventHubs,
            "a SAS connection string or JWT",
            &features::NOTIFICATION_WORKLOAD_IDENTITY,
        ),
        _ => return None,
    };
    let controller = "notification-controller";
    let running = ctx.running(controller);
    if let Some(secret) = &object.secret_ref {
        let info = ctx.secret(&object.namespace, secret);
        let credential_key = match service {
            AzureService::DevOps => info.map(|s| s.keys.iter().any(|k| k == "token")),
            _ => info.map(|s| s.keys.iter().any(|k| k == "token" || k == "address")),
        };
        if credential_key != Some(false) {
            let mut decision = Decision::new(
                static_secret(secret, static_what),
                format!("Secret {secret} holds {static_what}, used instead of workload identity"),
            );
            if let Some(sa) = &object.service_account_name {
                if service == AzureService::EventHubs {
                    decision.refused = Some(format!(
                        "serviceAccountName {sa} together with a SAS or JWT in Secret {secret}: every event fails with `invalid authentication options: serviceAccountName and SAS authentication cannot be set at the same time`"
                    ));
                }
                decision = decision.bypassing("object-level workload identity");
            }
            return Some(decision);
        }
    }
    // Before these releases the notifier reads only the Secret: a PAT, a connection string.
    Some(
        ctx.identity(
            object,
            controller,
            workload_identity,
            "--default-service-account",
        )
        .needing(workload_identity, &running),
    )
}

/// Kustomization SOPS decryption with Key Vault (fluxcd/kustomize-controller
/// internal/decryptor/decryptor.go): `sops.azure-kv` in the decryption Secret wins; then
/// decryption.serviceAccountName, the lockdown default, the controller's identity. A Secret
/// with only age or PGP keys leaves Key Vault to the identity.
fn sops(ctx: &Context<'_>, object: &FluxObject, key_vault_evidence: bool) -> Option<Decision> {
    let decryption = object.decryption.as_ref()?;
    if decryption.provider.as_deref() != Some("sops") {
        return None;
    }
    let controller = "kustomize-controller";
    let running = ctx.running(controller);
    let secret = decryption
        .secret_ref
        .as_ref()
        .map(|name| (name, ctx.secret(&object.namespace, name)));
    if let Some((name, info)) = &secret {
        match info.and_then(|i| i.azure_kv.as_ref()) {
            Some(shape) => {
                let holds = match shape.credential() {
                    AzureKvCredential::ClientSecret => SecretHolds::ServicePrincipal,
                    AzureKvCredential::ClientCertificate => SecretHolds::Certificate,
                    AzureKvCredential::ManagedIdentity => SecretHolds::ManagedIdentity {
                        client_id: shape.client_id.clone(),
                    },
                    AzureKvCredential::Unusable => SecretHolds::Unknown,
                };
                let mut decision = Decision::new(
                    Credential::Secret {
                        name: (*name).clone(),
                        holds,
                    },
                    format!(
                        "Secret {name} has sops.azure-kv, which overrides every identity for Key Vault"
                    ),
                );
                let identity = if decryption.service_account_name.is_some() {
                    Some("decryption.serviceAccountName".to_string())
                } else {
                    ctx.controller_identity(controller)
                };
                if let Some(identity) = identity {
                    decision = decision.bypassing(identity);
                }
                return Some(decision);
            }
            None if info
                .is_none_or(|i| i.encrypted || i.keys.iter().any(|k| k == "sops.azure-kv")) =>
            {
                return Some(Decision::new(
                    Credential::Secret {
                        name: (*name).clone(),
                        holds: SecretHolds::Unknown,
                    },
                    format!(
                        "Secret {name} was not read: a sops.azure-kv key in it would override every identity for Key Vault"
                    ),
                ));
            }
            None => {}
        }
    }
    let evidence = key_vault_evidence || decryption.service_account_name.is_some();
    if !evidence {
        return None;
    }
    let object_sa = decryption.service_account_name.as_ref().map(|sa| {
        Decision::new(
            Credential::ServiceAccount {
                name: sa.clone(),
                lockdown_default: None,
            },
            format!("decryption.serviceAccountName {sa}: object-level workload identity"),
        )
        .needing(&features::OBJECT_LEVEL_SOPS, &running)
    });
    let mut decision = object_sa
        .or_else(|| {
            ctx.lockdown(controller, "--default-decryption-service-account").map(|c| {
                Decision::new(c, "no decryption.serviceAccountName, and kustomize-controller runs with --default-decryption-service-account")
            })
        })
        .unwrap_or_else(|| Decision::new(Credential::Controller, "no sops.azure-kv and no decryption.serviceAccountName: kustomize-controller's own identity"));
    if secret.is_some() {
        decision
            .reason
            .push_str("; the decryption Secret holds no sops.azure-kv (age or PGP keys only)");
    }
    Some(decision)
}

/// `.spec.kubeConfig.configMapRef` with `provider: azure` (fluxcd/pkg auth/utils/restconfig.go).
fn remote_cluster(
    ctx: &Context<'_>,
    object: &FluxObject,
    controller: &'static str,
) -> Option<Decision> {
    let name = object.kube_config.as_ref()?.config_map_ref.as_ref()?;
    let config_map = ctx.snapshot.config_map(&object.namespace, name)?;
    if config_map.data.get("provider").map(String::as_str) != Some("azure") {
        return None;
    }
    let feature = if controller == "helm-controller" {
        &features::REMOTE_AKS_HELM
    } else {
        &features::REMOTE_AKS_KUSTOMIZE
    };
    let running = ctx.running(controller);
    let decision = match config_map.data.get("serviceAccountName").filter(|s| !s.is_empty()) {
        Some(sa) => Decision::new(
            Credential::ServiceAccount { name: sa.clone(), lockdown_default: None },
            format!("ConfigMap {name} names serviceAccountName {sa}"),
        ),
        None => ctx
            .lockdown(controller, "--default-kubeconfig-service-account")
            .map_or_else(
                || Decision::new(Credential::Controller, format!("ConfigMap {name} names no serviceAccountName: {controller}'s own identity")),
                |c| Decision::new(c, format!("ConfigMap {name} names no serviceAccountName, and {controller} runs with --default-kubeconfig-service-account")),
            ),
    };
    Some(decision.needing(feature, &running))
}

/// Whether Kustomizations' SOPS decryption means Key Vault: the manifests hold Key Vault
/// encrypted files, or kustomize-controller carries Azure wiring.
fn key_vault_evidence(snapshot: &Snapshot, controllers: &[ControllerPath]) -> bool {
    !snapshot.sops_key_vaults.is_empty()
        || controllers.iter().any(|c| {
            c.name == "kustomize-controller"
                && (c.wiring != WiringMode::None || c.pod_identity.is_some())
        })
}

/// Every use of Azure among the Flux objects, in inventory order.
pub fn resolve_uses(snapshot: &Snapshot, controllers: &[ControllerPath]) -> Vec<UsePath> {
    let ctx = Context {
        snapshot,
        controllers,
    };
    let objects = &snapshot.flux.objects;
    let git: HashMap<(&str, &str), &FluxObject> = objects
        .iter()
        .filter(|o| o.kind == Some(FluxKind::GitRepository))
        .map(|o| ((o.namespace.as_str(), o.name.as_str()), o))
        .rev()
        .collect();
    let evidence = key_vault_evidence(snapshot, controllers);
    let mut uses = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let Some(kind) = object.kind else { continue };
        let controller = controller_for(kind);
        let mut push = |service, decision: Option<Decision>, controller: &'static str| {
            if let Some(d) = decision {
                uses.push(UsePath {
                    object: index,
                    service,
                    controller,
                    credential: d.credential,
                    reason: d.reason,
                    bypasses: d.bypasses,
                    needs: d.needs,
                    refused: d.refused,
                });
            }
        };
        match kind {
            FluxKind::GitRepository => push(
                AzureService::DevOps,
                git_repository(&ctx, object, controller),
                controller,
            ),
            FluxKind::OCIRepository => push(
                AzureService::ContainerRegistry,
                oci_repository(&ctx, object),
                controller,
            ),
            FluxKind::HelmRepository => push(
                AzureService::ContainerRegistry,
                helm_repository(object),
                controller,
            ),
            FluxKind::Bucket => push(AzureService::BlobStorage, bucket(&ctx, object), controller),
            FluxKind::ImageRepository => push(
                AzureService::ContainerRegistry,
                image_repository(&ctx, object),
                controller,
            ),
            FluxKind::ImageUpdateAutomation => push(
                AzureService::DevOps,
                update_automation(&ctx, object, &git),
                controller,
            ),
            FluxKind::Provider => {
                let service = if object.type_.as_deref() == Some("azuredevops") {
                    AzureService::DevOps
                } else {
                    AzureService::EventHubs
                };
                push(service, notification_provider(&ctx, object), controller);
            }
            FluxKind::Kustomization | FluxKind::HelmRelease => {
                if kind == FluxKind::Kustomization {
                    push(
                        AzureService::KeyVault,
                        sops(&ctx, object, evidence),
                        controller,
                    );
                }
                push(
                    AzureService::KubernetesService,
                    remote_cluster(&ctx, object, controller),
                    controller,
                );
            }
        }
    }
    uses
}
