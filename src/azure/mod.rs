//! The Azure side of the chain: the AKS cluster's OIDC and workload identity settings, the
//! identities the wiring names, their federated credentials and role assignments, and a probe
//! that exchanges a freshly minted ServiceAccount token the way a controller does.
//!
//! Gathering here is I/O and fills `snapshot.azure` and `snapshot.probes` with plain data; the
//! checks in `checks/azure.rs` stay pure. Logins go through azure_identity, the few Resource
//! Manager calls through reqwest (see `arm`). Tokens, secrets and assertions never leave the
//! functions that use them: only their claims are kept.

pub mod aadsts;
pub mod arm;
pub mod builtin_roles;
pub mod clusters;
pub mod condition;
pub mod credential;
pub mod declared;
pub mod deny;
pub mod endpoints;
pub mod extension;
pub mod federate;
pub mod fic;
pub mod gather;
pub mod jwt;
pub mod permissions;
pub mod probe;
pub mod roles;
mod shapes;
pub mod state;
pub mod subjects;

use std::time::Duration;

use clap::{Args, ValueEnum};

use self::arm::{Arm, Bearer};
use self::credential::NoLogin;
use self::endpoints::Endpoints;
use self::gather::ClusterLocator;
use crate::model::{Fact, Snapshot};
use crate::resolve::Resolved;
use crate::wiring::Cloud;

/// When doctor reads Azure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum When {
    /// When credentials are found
    Auto,
    /// Always; missing credentials are reported as the reason the checks were skipped
    Always,
    /// Never; the Azure checks are skipped
    Never,
}

/// How to log in to Azure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthChoice {
    /// Workload identity, then a service principal secret, then the Azure CLI
    Auto,
    /// AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID
    WorkloadIdentity,
    /// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET
    ClientSecret,
    /// The Azure CLI's login (`az login`)
    AzCli,
}

/// How to reach and log in to Azure; shared by the commands that talk to it.
#[derive(Debug, Clone, Args)]
pub struct AzureConnection {
    /// How to log in to Azure
    #[arg(long, value_enum, default_value_t = AuthChoice::Auto)]
    pub azure_auth: AuthChoice,
    /// Resource Manager endpoint, for private clouds (default: the cloud's)
    #[arg(long, env = "AZFLUX_ARM_ENDPOINT", value_name = "URL")]
    pub arm_endpoint: Option<String>,
    /// Entra ID authority host, for private clouds (default: the cloud's)
    #[arg(long, env = "AZURE_AUTHORITY_HOST", value_name = "URL")]
    pub authority_host: Option<String>,
}

impl AzureConnection {
    /// Rejects malformed or unsafe endpoint overrides before anything is read.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(value) = &self.arm_endpoint {
            endpoints::check_override("--arm-endpoint", value)?;
        }
        if let Some(value) = &self.authority_host {
            endpoints::check_override("--authority-host", value)?;
        }
        Ok(())
    }

    pub fn endpoints(&self, cloud: Cloud) -> Result<Endpoints, String> {
        Endpoints::resolve(
            cloud,
            self.arm_endpoint.as_deref(),
            self.authority_host.as_deref(),
        )
    }
}

/// doctor's Azure flags.
#[derive(Debug, Clone, Args)]
pub struct AzureArgs {
    /// Check the Azure side (AKS settings, identities, federated credentials, roles): auto
    /// does when Azure credentials are found; --azure alone means always
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        num_args = 0..=1,
        default_value_t = When::Auto,
        default_missing_value = "always"
    )]
    pub azure: When,
    #[command(flatten)]
    pub connection: AzureConnection,
    /// Subscription of the AKS cluster named by --resource-group and --cluster-name
    #[arg(long, value_name = "ID")]
    pub subscription: Option<String>,
    /// Resource group of the AKS cluster (default: found by the API server's FQDN)
    #[arg(long, value_name = "NAME", requires = "cluster_name")]
    pub resource_group: Option<String>,
    /// Name of the AKS cluster (default: found by the API server's FQDN)
    #[arg(long, value_name = "NAME", requires = "resource_group")]
    pub cluster_name: Option<String>,
    /// Mint a token for each ServiceAccount Flux uses and exchange it at Entra ID as the
    /// controller would (live mode; only claims are shown, never tokens)
    #[arg(long)]
    pub probe: bool,
}

/// What doctor asks of the Azure side.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub args: &'a AzureArgs,
    /// `--cloud`; otherwise the cloud of the endpoints Flux objects use.
    pub cloud: Option<Cloud>,
    pub timeout: Duration,
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("kubectl-azflux/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

async fn read_azure(
    snapshot: &Snapshot,
    request: &Request<'_>,
    endpoints: &Endpoints,
    http: reqwest::Client,
    subjects: &[subjects::WiSubject],
) -> Fact<state::AzureState> {
    let args = request.args;
    let login = match credential::login(args.connection.azure_auth, endpoints) {
        Ok(login) => login,
        Err(NoLogin::NotFound(reason)) if args.azure == When::Auto => {
            return Fact::Unknown(format!("{reason}; or --azure=never"));
        }
        Err(NoLogin::NotFound(reason) | NoLogin::Unusable(reason)) => {
            return Fact::Unknown(reason);
        }
    };
    // The credential's own HTTP client has no timeout: a silent Entra endpoint would hold
    // doctor for minutes.
    let token =
        match tokio::time::timeout(request.timeout, credential::arm_token(&login, endpoints)).await
        {
            Ok(Ok(token)) => token,
            Ok(Err(reason)) => return Fact::Unknown(reason),
            Err(_) => {
                return Fact::Unknown(format!(
                    "no Azure token from {} within {}s (--request-timeout)",
                    login.method,
                    request.timeout.as_secs_f32()
                ));
            }
        };
    let arm = Arm::new(http, &endpoints.arm, Bearer::new(token));
    let locator = ClusterLocator {
        subscription: args.subscription.clone(),
        resource_group: args.resource_group.clone(),
        cluster_name: args.cluster_name.clone(),
    };
    gather::read(&arm, login.method, snapshot, subjects, &locator).await
}

/// Reads what `--azure` and `--probe` ask for into the snapshot. `kube` is the client of the
/// live cluster (absent in manifest mode, where nothing can be probed).
pub async fn gather(snapshot: &mut Resolved, request: &Request<'_>, kube: Option<&kube::Client>) {
    let args = request.args;
    if args.azure == When::Never && !args.probe {
        snapshot.set_azure(Fact::Unknown("not asked for (--azure=never)".into()));
        return;
    }
    let cloud = request
        .cloud
        .unwrap_or_else(|| crate::checks::expected_cloud(snapshot));
    let prepared = args
        .connection
        .endpoints(cloud)
        .and_then(|e| Ok((e, http_client(request.timeout)?)));
    let (endpoints, http) = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => {
            snapshot.set_azure(Fact::Unknown(reason.clone()));
            snapshot.set_probes(Fact::Unknown(reason));
            return;
        }
    };
    let subjects = subjects::subjects(snapshot);
    let azure = if args.azure == When::Never {
        Fact::Unknown("not asked for (--azure=never)".into())
    } else {
        read_azure(snapshot, request, &endpoints, http.clone(), &subjects).await
    };
    snapshot.set_azure(azure);
    if args.probe {
        let probes = match kube {
            Some(kube) => Fact::Known(
                probe::run(kube, &http, &endpoints, snapshot.azure.known(), &subjects).await,
            ),
            None => Fact::Unknown(
                "the probe needs a live cluster: it mints tokens through the API server".into(),
            ),
        };
        snapshot.set_probes(probes);
    }
}
